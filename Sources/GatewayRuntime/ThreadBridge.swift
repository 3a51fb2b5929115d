import Foundation

/// Runs blocking work (SQLite batches, file reads, ODBC calls) on a thread of its own and awaits its result, so
/// that it never occupies one of the cooperative pool's few threads (two on the gateway's machines).
func onOwnThread<T: Sendable>(named name: String, _ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.name = name
        thread.start()
    }
}

/// A flag one task clears and others read: "is the producer still running?"
final class RunningFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true

    var isRunning: Bool { lock.withLock { running } }
    func finish() { lock.withLock { running = false } }
}
