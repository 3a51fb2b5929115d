import Adapters
import Foundation
import GatewayConfig
import GatewayModel
import Mapping
import ODBCSupport
import TextSupport

extension Gateway {
    /// `esgate mapping test --adapter ODBC_ADAPTER`: runs the adapter's query on its database, takes the first
    /// `rows` rows and maps them as the adapter would (column names as the header, NULL as ""). Nothing is
    /// written: no journal, no watermark, no front-table flags (see `ODBCAdapter.sample`).
    ///
    /// The ODBC calls block, so they run on a dispatch queue of their own rather than a cooperative thread.
    public static func testMapping(plan: MappingPlan, schema: PUISchema, adapter name: String, odbc settings: ODBCSettings,
                                   rows limit: Int, file: String? = nil) async -> Result<[MappingTestRow], ODBCMappingTestFailure> {
        let sample: ODBCSample
        do {
            sample = try await ODBCWorker(label: "mapping-test-\(name)").run { try ODBCAdapter.sample(name: name, settings: settings, rows: limit, file: file) }
        } catch let error as ODBCAdapterError {
            return .failure(ODBCMappingTestFailure([error]))
        } catch {
            return .failure(ODBCMappingTestFailure([ODBCAdapterError(adapter: name, cause: .configuration("\(error)"))]))
        }
        // What the poll would refuse about the result's columns, mapping test says before going live: all of it
        // at once, so that one run shows every key to fix.
        var problems = ODBCAdapter.columnProblems(of: plan, in: sample.header, adapter: name)
            + ODBCAdapter.namedColumnProblems(settings, in: sample.header, adapter: name)
        // The values of a watermark column that is not in the result cannot be looked at.
        if !problems.contains(where: { $0.field == "odbc.watermark_column" }) {
            do { try ODBCAdapter.checkWatermarkValues(settings, in: sample, adapter: name) } catch { problems.append(error) }
        }
        if !problems.isEmpty {
            return .failure(ODBCMappingTestFailure(problems.map { error in
                var located = error
                located.file = file
                return located
            }))
        }
        let bound: BoundMapping
        switch plan.bind(header: sample.header) {
        case .success(let mapping): bound = mapping
        case .failure(let error):
            return .failure(ODBCMappingTestFailure([ODBCAdapterError(adapter: name, cause: .configuration("the query's columns do not fit mapping \(plan.name): \(error.message)"),
                                                                     field: "mapping", file: file)]))
        }
        return .success(sample.rows.enumerated().map { index, fields in
            .mapped(fields, line: index + 1, mapping: bound, schema: schema)
        })
    }
}

/// Why `mapping test --adapter` could not map an ODBC adapter's rows: every problem found, one a line.
public struct ODBCMappingTestFailure: Error, CustomStringConvertible, Sendable {
    public let errors: [ODBCAdapterError]
    public init(_ errors: [ODBCAdapterError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
