import Adapters
import Foundation
import GatewayConfig
import GatewayModel
import HTTPClientSupport
import Mapping
import TextSupport

extension Gateway {
    /// `esgate mapping test --adapter SOAP_ADAPTER --file response.xml`: runs a saved SOAP response through the
    /// adapter's own reading rules (charset rule, safe parsing, inner document, record and field XPaths) and the
    /// mapping, and returns each record's result. Nothing is written.
    public static func testMapping(plan: MappingPlan, schema: PUISchema, soap settings: SOAPSettings, responseFile: String,
                                   rows limit: Int) -> Result<[MappingTestRow], FileReadError> {
        guard let data = FileManager.default.contents(atPath: responseFile) else {
            return .failure(FileReadError(path: responseFile, message: "cannot read the saved response"))
        }
        let response = HTTPResponse(status: 200, headers: [], body: [UInt8](data))
        let rows: [[String]]
        do {
            switch try SOAPResponseReader(settings: settings).read(response) {
            case .rows(let found): rows = found
            case .refused(let error): return .failure(FileReadError(path: responseFile, message: "refused: \(error)"))
            }
        } catch {
            return .failure(FileReadError(path: responseFile, message: error.description))
        }
        let bound: BoundMapping
        switch plan.bind(header: settings.fields.map(\.column)) {
        case .success(let mapping): bound = mapping
        case .failure(let error): return .failure(FileReadError(path: responseFile, message: error.message))
        }
        var results: [MappingTestRow] = []
        for (index, fields) in rows.prefix(limit).enumerated() {
            var output = MappingTestRow(line: index + 1, records: [], errors: [])
            let outcome = bound.map(fields)
            output.errors = outcome.errors.map { Redaction.maskIdentityNumbers(in: $0.description) }
            for draft in outcome.records {
                switch schema.normalize(draft) {
                case .success(let record): output.records.append(Redaction.maskIdentityNumbers(in: record.body))
                case .failure(let error): output.errors.append(Redaction.maskIdentityNumbers(in: error.description))
                }
            }
            results.append(output)
        }
        return .success(results)
    }
}
