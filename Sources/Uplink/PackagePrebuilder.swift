import Dispatch
import Foundation
import GatewayModel
import Journal
import Synchronization

/// Builds the packages after next on a thread of its own, while the uplink sends the current package and applies
/// its receipt (which fixes the next one); it keeps two packages ready ahead (`claim`). The result is only a
/// candidate: the uplink uses it as the next step's `FixAhead` when it was built for exactly the position and
/// number that step needs (otherwise it builds synchronously), and `UplinkStore.fixAheadIfStillNext` stays the
/// final guard at commit time. Nothing here is ever fixed, so a discarded candidate costs nothing but its CPU time.
///
/// The unchecked `Sendable` is sound because the mutable state (`journal`) and `builder` (a copy whose
/// `XMLSchemaValidator` is never touched: `verify` is off, and the uplink never pre-builds with
/// `verify_packages`) are used only by the jobs on `queue`, a serial queue: one job at a time, each one
/// happening after the previous one. The journal connection is the pre-builder's own (read-only, opened by its
/// first job), used by no other object. The other stored properties are immutable and Sendable.
final class PackagePrebuilder: @unchecked Sendable {
    private let queue: DispatchQueue
    private let journalPath: String
    private let builder: PackageBuilder
    private let types: [String]?
    private let now: @Sendable () -> Date
    private let logger: Logger
    /// Touched only on `queue`.
    private var journal: Journal?
    /// Touched only on `queue`.
    private var reportedOpenFailure = false

    init(name: String, journalPath: String, builder: PackageBuilder, types: [String], logger: Logger,
         now: @escaping @Sendable () -> Date) {
        self.logger = logger
        queue = DispatchQueue(label: "esgate.uplink.prebuild.\(name)")
        self.journalPath = journalPath
        var builder = builder
        builder.verify = false
        self.builder = builder
        self.types = types.isEmpty ? nil : types
        self.now = now
    }

    /// Starts building package number `n` from the journal entries after `after`; returns at once. The job then
    /// goes on with its successor (the package after it) as soon as it is done: `claim` it to keep the chain.
    func start(n: Int64, after: Int64) -> Job {
        let job = Job(n: n, after: after, successorWanted: true)
        queue.async { [self] in run(job) }
        return job
    }

    /// `job` (a successor the uplink took as the package after next) is to build its own successor once done.
    /// So the pre-builder stays two packages ahead of the one on the wire: it goes on building while the uplink
    /// waits for an answer or an fsync, instead of waiting for the next step to start it.
    func claim(_ job: Job) {
        if let successor = job.wantSuccessor() {
            queue.async { [self] in run(successor) }
        }
    }

    /// Runs on `queue`.
    private func run(_ job: Job) {
        // Dropped by the uplink (a failed attempt, a resend queued) before it ran: no build, and no successor.
        guard !job.isAbandoned else {
            _ = job.finish(nil, successor: nil)
            return
        }
        let result = build(n: job.n, after: job.after)
        let successor = result.flatMap { $0.package.memberSeqs.last }.map { Job(n: job.n + 1, after: $0, successorWanted: false) }
        // Queued, not called: each job's frame (and the package it holds) ends before the next one runs.
        if job.finish(result, successor: successor), let successor {
            queue.async { [self] in run(successor) }
        }
    }

    /// Runs on `queue`. Nil when there is nothing after `after`, when a record is held back (the synchronous path
    /// dead-letters those), or on any failure: the uplink then builds synchronously.
    private func build(n: Int64, after: Int64) -> UplinkStore.FixAhead? {
        if journal == nil {
            do {
                journal = try Journal(readingOnly: journalPath)
            } catch {
                // Correct either way (the uplink builds on its own thread), but the overlap is lost: say so once.
                if !reportedOpenFailure {
                    reportedOpenFailure = true
                    logger.warning("packages are built one at a time: the pre-builder cannot open the journal read-only: \(error)")
                }
            }
        }
        // Nil from the one-pass path (a record to hold back): the uplink's synchronous path handles it.
        guard let journal, let built = try? builder.buildDirect(n: n, from: journal, after: after, types: types, now: now()) else {
            return nil
        }
        return UplinkStore.FixAhead(package: built, after: after)
    }

    /// One pre-build: what it was started for, its result once the queue has run it, and the job for the package
    /// after it (created when it is done, run when wanted).
    final class Job: Sendable {
        /// The PackageId number and the journal position the package was built for.
        let n: Int64
        let after: Int64

        private enum Phase {
            case running(waiter: CheckedContinuation<UplinkStore.FixAhead?, Never>?)
            case done(UplinkStore.FixAhead?)
        }

        private struct State {
            var phase: Phase = .running(waiter: nil)
            var successorWanted: Bool
            var successor: Job?
            var successorStarted = false
            var abandoned = false
        }

        private let state: Mutex<State>

        init(n: Int64, after: Int64, successorWanted: Bool) {
            self.n = n
            self.after = after
            state = Mutex(State(successorWanted: successorWanted))
        }

        /// The job for the package after this one (nil until this one is done, or when it built none).
        var successor: Job? { state.withLock { $0.successor } }
        /// Nobody will ask for this package: a job not yet run is skipped, and its successor is not started.
        func abandon() {
            let successor = state.withLock { state -> Job? in
                state.abandoned = true
                state.successorWanted = false
                return state.successor
            }
            successor?.abandon()
        }

        var isAbandoned: Bool { state.withLock { $0.abandoned } }

        /// Whether the successor was set running (tests: the chain goes no further than claimed).
        var successorStarted: Bool { state.withLock { $0.successorStarted } }

        /// Records the result; returns whether the successor is to run now (it was wanted and is not running yet).
        fileprivate func finish(_ result: UplinkStore.FixAhead?, successor: Job?) -> Bool {
            let (waiter, runSuccessor) = state.withLock { state -> (CheckedContinuation<UplinkStore.FixAhead?, Never>?, Bool) in
                guard case .running(let waiter) = state.phase else { return (nil, false) }
                state.phase = .done(result)
                state.successor = successor
                let run = state.successorWanted && successor != nil
                if run { state.successorStarted = true }
                return (waiter, run)
            }
            waiter?.resume(returning: result)
            return runSuccessor
        }

        /// Marks the successor wanted; returns it when it is to be run now (this job is done and it is not running).
        fileprivate func wantSuccessor() -> Job? {
            state.withLock { state -> Job? in
                guard !state.abandoned else { return nil }
                state.successorWanted = true
                guard case .done = state.phase, let successor = state.successor, !state.successorStarted else { return nil }
                state.successorStarted = true
                return successor
            }
        }

        /// The built package (nil when there was none), waiting for the job if it still runs. Awaited at most once.
        func result() async -> UplinkStore.FixAhead? {
            await withCheckedContinuation { (continuation: CheckedContinuation<UplinkStore.FixAhead?, Never>) in
                let (ready, replaced) = state.withLock { state -> (UplinkStore.FixAhead??, CheckedContinuation<UplinkStore.FixAhead?, Never>?) in
                    switch state.phase {
                    case .done(let result):
                        return (.some(result), nil)
                    case .running(let earlier):
                        state.phase = .running(waiter: continuation)
                        return (.none, earlier)
                    }
                }
                // Awaited twice (not done today): the earlier waiter gets no package and builds its own, rather than
                // waiting for ever.
                replaced?.resume(returning: nil)
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}
