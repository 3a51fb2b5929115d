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
        // A status command probes the lock with a shared flock for a moment (RunningGateway.find): a start that
        // meets such a probe tries again instead of reporting a gateway that is not there.
        var attempts = 0
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            let error = errno
            attempts += 1
            if error == EWOULDBLOCK && attempts < 20 {
                usleep(50_000)
                continue
            }
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

/// The `esgate run` (or `uplink run`) that holds a state directory's lock now: how the lock file names it, and
/// when it took the lock (the file's modification time).
struct RunningGateway {
    let holder: String
    let since: Date

    /// A continuous `esgate run`, by the holder text `acquire` writes ("pid N, esgate run, since …").
    var isContinuousRun: Bool { holder.contains(", esgate run,") }

    /// Never waits, and never keeps `esgate run` from starting: a shared flock tried without blocking fails
    /// exactly while a gateway holds the exclusive one, and is dropped at once otherwise (a start that meets it
    /// tries again). The kernel's answer, not the pid written in the file: that pid may be an old one, reused
    /// since by another process. (Reading /proc/locks instead failed in CI: not every sandbox lists flocks there.)
    static func find(stateDirectory: String) -> RunningGateway? {
        let path = (stateDirectory as NSString).appendingPathComponent("esgate.lock")
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        if flock(descriptor, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(descriptor, LOCK_UN)
            return nil
        }
        guard errno == EWOULDBLOCK,
              let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let since = attributes[.modificationDate] as? Date else { return nil }
        let holder = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        return RunningGateway(holder: holder.isEmpty ? "holder unknown" : holder, since: since)
    }
}

extension LoadedConfiguration {
    /// The configuration files (gateway.yaml, adapters, mappings) changed after `date`: a running gateway read them
    /// at its start and goes on with what they said then.
    func filesChanged(after date: Date) -> [String] {
        let files = [gateway.file] + adapters.map(\.file) + mappingSpecs.values.map(\.file).sorted()
        return files.filter { file in
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date else { return false }
            return modified > date
        }
    }

    /// What `status` says when the running gateway started before the configuration was last edited; nil otherwise.
    func staleConfigurationNotice() -> String? {
        guard let running = RunningGateway.find(stateDirectory: gateway.stateDirectory) else { return nil }
        let changed = filesChanged(after: running.since)
        guard !changed.isEmpty else { return nil }
        return "the running gateway (\(running.holder)) read its configuration at its start; changed since: \(changed.joined(separator: ", ")). What this status shows of them (receivers, poll intervals, adapters) is the edited files, not what runs: restart esgate to apply them"
    }
}
