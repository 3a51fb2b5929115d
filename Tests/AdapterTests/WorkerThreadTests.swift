@testable import Adapters
import Foundation
import Testing

/// Counts the live instances of itself.
private final class Tracked: @unchecked Sendable {
    static let lock = NSLock()
    nonisolated(unsafe) static var live = 0
    init() { Tracked.lock.withLock { Tracked.live += 1 } }
    deinit { Tracked.lock.withLock { Tracked.live -= 1 } }
    static var count: Int { lock.withLock { live } }
}

@Suite("Worker threads")
struct WorkerThreadTests {
    /// The ODBC adapter closes its connection right after the reader threads stop; a cursor still held by a dying
    /// thread would be freed after that, on a handle the driver manager may have handed to another statement.
    @Test("what a thread's body captured is released before the stop function returns")
    func capturesAreReleasedWhenStopped() {
        for _ in 0..<50 {
            let before = Tracked.count
            do {
                let captured = (0..<3).map { _ in Tracked() }
                let stop = startThreads(named: "test-worker", count: 3, cancel: {}) { index in
                    _ = captured[index]
                }
                stop()
            }
            #expect(Tracked.count == before)
        }
    }
}
