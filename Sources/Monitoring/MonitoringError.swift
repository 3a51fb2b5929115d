// Typed errors of the supervision engine, each with the context an operator needs to act on it.

import Journal
import SQLiteSupport
import Supervision

/// A failure of the supervision engine.
public enum MonitoringError: Error, CustomStringConvertible, Sendable {
    /// The engine's own tables could not be read or written.
    case storage(operation: String, underlying: String)
    /// The journal failed (append, cursor, read).
    case journal(JournalError)
    /// The reference data file cannot be used.
    case referenceData(file: String, line: Int, message: String)
    /// An alert or score built by the engine failed schema validation (a bug, or data the schema cannot carry).
    case invalidRecord(type: String, key: String, field: String, message: String)
    /// An operator action on an alert that does not exist.
    case unknownAlert(id: String)
    /// An operator action the alert's state does not allow.
    case transition(AlertTransitionError)
    /// An operator action without the required input.
    case invalidAction(message: String)

    public var description: String {
        switch self {
        case .storage(let operation, let underlying): return "supervision: \(operation): \(underlying)"
        case .journal(let error): return "supervision: \(error.description)"
        case .referenceData(let file, let line, let message):
            return line > 0 ? "reference data \(file):\(line): \(message)" : "reference data \(file): \(message)"
        case .invalidRecord(let type, let key, let field, let message):
            return "supervision: \(type) \(key): field \(field): \(message)"
        case .unknownAlert(let id): return "no alert with id \(id)"
        case .transition(let error): return "alert: \(describe(error))"
        case .invalidAction(let message): return "alert: \(message)"
        }
    }
}

func describe(_ error: AlertTransitionError) -> String {
    switch error {
    case .notAllowed(let id, let from, let action):
        return "\(id) is \(from.rawValue): '\(action)' is not allowed (OPEN → ack → ACKED → correct → CORRECTED → close → CLOSED)"
    case .blankExplanation(let id): return "\(id): ack needs a non-blank explanation"
    case .ruleCannotResolveByItself(let id, let rule): return "\(id): rule \(rule.rawValue) alerts cannot be RESOLVED"
    case .timeBeforeCurrentState(let id, let stateAt, let actionAt):
        return "\(id): action time \(actionAt) is before the alert's StateAt \(stateAt) (clock fault?)"
    }
}

/// Runs `body`, turning SQLite and journal failures into `MonitoringError` with `operation` as context.
func storage<T>(_ operation: String, _ body: () throws -> T) throws(MonitoringError) -> T {
    do {
        return try body()
    } catch let error as MonitoringError {
        throw error
    } catch let error as JournalError {
        throw .journal(error)
    } catch let error as SQLiteError {
        throw .storage(operation: operation, underlying: error.description)
    } catch {
        throw .storage(operation: operation, underlying: "\(error)")
    }
}
