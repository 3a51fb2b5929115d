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
        return .success(rows.prefix(limit).enumerated().map { index, fields in
            .mapped(fields, line: index + 1, mapping: bound, schema: schema)
        })
    }
}
