import Foundation
import GatewayModel
#if canImport(Glibc)
import Glibc
#endif

/// One gateway per state directory. Two `esgate run` on one journal (a second one started by a cron job, a
/// script that inherited ESGATE_CONFIG) both poll the sources and both push to the receivers: SQLite keeps the
/// data exactly-once, but each process fails the other's package commits and logs errors for ever. `run` and
/// `uplink run` therefore take an exclusive lock on `<state_dir>/esgate.lock` (flock: the kernel releases it when
/// the process ends, also after kill -9) and hold it until they exit; the file names the holder for the message.
/// Read-only commands (status, lists) take no lock.
struct StateDirectoryLock {
    struct Held: Error, CustomStringConvertible {
        let stateDirectory: String
        let holder: String
        var description: String {
            "another esgate is already running on state directory \(stateDirectory) (\(holder)): two gateways on one journal would poll every source and push every package twice; stop it first, or give this one another state_dir"
        }
    }

    struct Failed: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "cannot lock \(path): \(reason)" }
    }

    /// Takes the lock for the rest of the process (its descriptor is never closed), or throws when another
    /// process holds it.
    static func acquire(stateDirectory: String, command: String) throws {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        let path = (stateDirectory as NSString).appendingPathComponent("esgate.lock")
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Failed(path: path, reason: String(cString: strerror(errno))) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let error = errno
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(descriptor)
            guard error == EWOULDBLOCK else { throw Failed(path: path, reason: String(cString: strerror(error))) }
            throw Held(stateDirectory: stateDirectory, holder: holder.isEmpty ? "holder unknown" : holder)
        }
        let text = "pid \(getpid()), \(command), since \(beijingTimestamp(Date()))\n"
        _ = ftruncate(descriptor, 0)
        _ = text.withCString { pwrite(descriptor, $0, strlen($0), 0) }
    }
}

/// Takes the state directory's lock for `command`; false (after saying why) when another esgate holds it.
func lockStateDirectory(_ configuration: LoadedConfiguration, command: String) -> Bool {
    do {
        try StateDirectoryLock.acquire(stateDirectory: configuration.gateway.stateDirectory, command: command)
        return true
    } catch {
        writeError("\(error)")
        return false
    }
}
