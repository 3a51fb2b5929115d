import Foundation
import Testing
import XMLSupport

/// libxml2 2.9 builds its XSD built-in type library lazily, in the first schema compile of the process, without a
/// lock: schemas compiled at the same moment as the process's first ones (`run --once` drains every receiver on its
/// own task, and each compiles pui-v1.xsd) all built it at once, replacing the global type table under each other.
/// Run alone (`--filter SchemaInitialization`), this is the process's first schema compile. The race window is
/// short, so the test cannot make it fail on demand; it guards that concurrent first compiles all succeed.
@Suite("XSD type library initialisation")
struct SchemaInitializationTests {
    static let schemaText: String? = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../schema/pui-v1.xsd").standardizedFileURL
        return try? String(contentsOf: url, encoding: .utf8)
    }()

    @Test("schemas compiled on several threads at once, as the first ones, all compile and validate")
    func concurrentFirstCompiles() throws {
        let text = try #require(Self.schemaText)
        let threads = 8
        let start = DispatchGroup()
        start.enter()
        let done = DispatchGroup()
        let results = Results()
        for _ in 0..<threads {
            done.enter()
            let thread = Thread {
                start.wait()
                do {
                    let validator = try XMLSchemaValidator(schemaText: text)
                    let document = try XMLDocument(text: "<nothing/>")
                    results.add(validator.validate(document).isEmpty ? "accepted an element the schema does not declare" : nil)
                } catch {
                    results.add("\(error)")
                }
                done.leave()
            }
            thread.start()
        }
        start.leave()
        done.wait()
        #expect(results.failures == [])
        #expect(results.count == threads)
    }
}

private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var all: [String?] = []
    func add(_ failure: String?) { lock.withLock { all.append(failure) } }
    var failures: [String] { lock.withLock { all.compactMap { $0 } } }
    var count: Int { lock.withLock { all.count } }
}
