import Foundation
import GatewayConfig
import GatewayModel
import Testing
@testable import Mapping

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let schema: PUISchema? = try? PUISchema.shipped()

/// Compiles mapping YAML text; fails the test with the errors when it does not compile.
private func plan(_ yaml: String, file: String = "/tmp/test-mapping.yaml", sourceLocation: SourceLocation = #_sourceLocation) throws -> MappingPlan {
    var errors: [ConfigError] = []
    let spec = try #require(MappingSpec.parse(yaml, file: file, errors: &errors), sourceLocation: sourceLocation)
    #expect(errors.isEmpty, "\(errors)", sourceLocation: sourceLocation)
    switch MappingPlan.compile(spec, schema: try #require(schema)) {
    case .success(let plan): return plan
    case .failure(let failure):
        Issue.record("\(failure)", sourceLocation: sourceLocation)
        throw failure
    }
}

private func compileErrors(_ yaml: String) throws -> [String] {
    var errors: [ConfigError] = []
    guard let spec = MappingSpec.parse(yaml, file: "m.yaml", errors: &errors) else { return errors.map(\.description) }
    if case .failure(let failure) = MappingPlan.compile(spec, schema: try #require(schema)) { errors += failure.errors }
    return errors.map(\.description)
}

private func bind(_ plan: MappingPlan, _ header: [String]) throws -> BoundMapping {
    try plan.bind(header: header).get()
}

private let stepHeader = ["CASE", "WHEN", "WHO", "LIMIT", "CODE"]

private let stepMapping = """
    records:
      - type: Step
        fields:
          CaseNo: CASE
          StepCode: { column: CODE, default: "09" }
          StepName: { constant: 审核 }
          Handler.Name: WHO
          HandledAt: { column: WHEN, datetime: ["yyyy-MM-dd HH:mm:ss", "yyyy/M/d H:mm", "yyyyMMddHHmmss"] }
    """

/// A Step mapping whose HandledAt (line 8) reads column WHEN with `datetime` (YAML: a format or a list).
private func stepMapping(datetime: String) -> String {
    """
    records:
      - type: Step
        fields:
          CaseNo: CASE
          StepCode: CODE
          StepName: { constant: 审核 }
          Handler.Name: WHO
          HandledAt: { column: WHEN, datetime: \(datetime) }
    """
}

@Suite struct MappingFeatureTests {
    @Test func renamesConstantsDefaultsAndTrimming() throws {
        let mapping = try bind(try plan(stepMapping), stepHeader)
        let outcome = mapping.map(["  C-1 ", "2026-01-05 08:37:00", "\u{3000}王伟 ", "", ""])
        #expect(outcome.errors.isEmpty)
        let record = try #require(outcome.records.first)
        #expect(record["CaseNo"] == "C-1", "ASCII and ideographic spaces are trimmed")
        #expect(record["Handler.Name"] == "王伟")
        #expect(record["StepCode"] == "09", "blank column falls back to the default")
        #expect(record["StepName"] == "审核")
        #expect(record["HandledAt"] == "2026-01-05T08:37:00+08:00")
    }

    @Test func trimCanBeTurnedOff() throws {
        let mapping = try bind(try plan("""
            records:
              - type: Step
                fields:
                  CaseNo: CASE
                  StepCode: { constant: "02" }
                  StepName: { column: WHO, trim: false }
                  Handler.Name: WHO
                  HandledAt: { column: WHEN, datetime: "yyyy-MM-dd HH:mm:ss" }
            """), stepHeader)
        #expect(mapping.map(["C", "2026-01-05 08:37:00", " 王 ", "", ""]).records.first?["StepName"] == " 王 ")
    }

    @Test(arguments: [
        ("2026-01-05 08:37:00", "2026-01-05T08:37:00+08:00"),
        ("2026/1/5 8:37", "2026-01-05T08:37:00+08:00"),
        ("20260105083700", "2026-01-05T08:37:00+08:00"),
    ])
    func dateTimeFormatsAreTriedInOrder(input: String, expected: String) throws {
        let mapping = try bind(try plan(stepMapping), stepHeader)
        #expect(mapping.map(["C", input, "王", "", "02"]).records.first?["HandledAt"] == expected)
    }

    @Test func impossibleOrUnparseableTimesAreErrorsNamingFieldAndColumn() throws {
        let mapping = try bind(try plan(stepMapping), stepHeader)
        for bad in ["2026-02-30 08:00:00", "2026-01-05 25:00:00", "05/01/2026", "2026-01-05 08:37"] {
            let outcome = mapping.map(["C", bad, "王", "", "02"])
            #expect(outcome.records.isEmpty)
            #expect(outcome.errors.first?.field == "HandledAt")
            #expect(outcome.errors.first?.column == "WHEN")
        }
    }

    @Test func anImpossibleDateIsCalledSoAndADateWithoutTimeIsMidnight() throws {
        let mapping = try bind(try plan(stepMapping(datetime: #"["yyyyMMdd", "yyyy年M月d日 H:mm", "yyyy-MM-dd'T'HH:mm"]"#)), stepHeader)
        let impossible = mapping.map(["C", "20260230", "王", "", "02"]).errors.first?.message
        #expect(impossible == "'20260230' is an impossible date (2026-02-30) (time format yyyyMMdd or yyyy年M月d日 H:mm or yyyy-MM-dd'T'HH:mm)")
        #expect(mapping.map(["C", "2026-01-05T24:00", "王", "", "02"]).errors.first?.message.hasPrefix("'2026-01-05T24:00' is an impossible time (24:00:00)") == true)
        #expect(mapping.map(["C", "2026-1-5", "王", "", "02"]).errors.first?.message.hasPrefix("'2026-1-5' does not match the time format") == true)
        #expect(mapping.map(["C", "20260105", "王", "", "02"]).records.first?["HandledAt"] == "2026-01-05T00:00:00+08:00")
        #expect(mapping.map(["C", "2026年1月5日 8:37", "王", "", "02"]).records.first?["HandledAt"] == "2026-01-05T08:37:00+08:00")
        #expect(mapping.map(["C", "2026-01-05T08:37", "王", "", "02"]).records.first?["HandledAt"] == "2026-01-05T08:37:00+08:00")
    }

    @Test func legacyTimesInAnotherZoneAreConvertedToBeijing() throws {
        let mapping = try bind(try plan("""
            records:
              - type: Step
                fields:
                  CaseNo: CASE
                  StepCode: { constant: "02" }
                  StepName: { constant: x }
                  Handler.Name: WHO
                  HandledAt: { column: WHEN, datetime: "yyyy-MM-dd HH:mm:ss.SSS", utc_offset: "+00:00" }
            """), stepHeader)
        // 2025-12-31 20:15 UTC is 2026-01-01 04:15 in Beijing (+8 h): the date rolls over a year boundary.
        #expect(mapping.map(["C", "2025-12-31 20:15:30.5", "王", "", ""]).records.first?["HandledAt"] == "2026-01-01T04:15:30.500+08:00")
        // PostgreSQL's microseconds (trailing zeros left out) and nanoseconds: kept to the millisecond, cut.
        #expect(mapping.map(["C", "2026-12-05 08:00:32.84174", "王", "", ""]).records.first?["HandledAt"] == "2026-12-05T16:00:32.841+08:00")
        #expect(mapping.map(["C", "2026-12-05 08:00:59.999999999", "王", "", ""]).records.first?["HandledAt"] == "2026-12-05T16:00:59.999+08:00")
        #expect(mapping.map(["C", "2026-12-05 08:00:59.1234567890", "王", "", ""]).errors.first?.field == "HandledAt", "ten digits")
    }

    @Test func decimalsAndIntegers() throws {
        let mapping = try bind(try plan("""
            records:
              - type: Fee
                fields:
                  CaseNo: CASE
                  FeeCode: { constant: F1 }
                  FeeName: { constant: 费 }
                  Amount: { column: LIMIT, decimal: 2 }
                  ChargedAt: { column: WHEN, datetime: "yyyy-MM-dd HH:mm:ss" }
              - type: Acceptance
                fields:
                  CaseNo: CASE
                  DeptCode: { constant: "410103001" }
                  Decision: { constant: "1" }
                  Handler.Name: WHO
                  AcceptedAt: { column: WHEN, datetime: "yyyy-MM-dd HH:mm:ss" }
                  PromisedLimit: { column: CODE, integer: true }
                  PromisedUnit: { constant: W }
                  LegalLimit: { constant: "20" }
                  LegalUnit: { constant: W }
            """), stepHeader)
        let good = mapping.map(["C", "2026-01-05 08:37:00", "王", "1,200.5", "015"])
        #expect(good.errors.isEmpty)
        #expect(good.records[0]["Amount"] == "1200.50")
        #expect(good.records[1]["PromisedLimit"] == "15")
        let tooPrecise = mapping.map(["C", "2026-01-05 08:37:00", "王", "1.234", "15.0"])
        #expect(tooPrecise.errors.map(\.field) == ["Amount"])
        #expect(tooPrecise.records.first?["PromisedLimit"] == "15", "15.0 is a whole number")
        let fraction = mapping.map(["C", "2026-01-05 08:37:00", "王", "1", "1.5"])
        #expect(fraction.errors.map(\.field) == ["PromisedLimit"])
    }

    @Test func codeTablesInlineFromCSVWithDefaultAndPassThrough() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esgate-map-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try Data("# legacy,pui\nA1,02\r\nA2,03\n".utf8).write(to: folder.appendingPathComponent("steps.csv"))
        let yaml = """
            code_tables:
              steps: { file: steps.csv }
              names: { map: { A1: 承办, A2: 审核 }, default: 其他 }
              people: { map: { X: 张三 }, pass_through: true }
            records:
              - type: Step
                fields:
                  CaseNo: CASE
                  StepCode: { column: CODE, code_table: steps }
                  StepName: { column: CODE, code_table: names }
                  Handler.Name: { column: WHO, code_table: people }
                  HandledAt: { column: WHEN, datetime: "yyyy-MM-dd HH:mm:ss" }
            """
        let mapping = try bind(try plan(yaml, file: folder.appendingPathComponent("m.yaml").path), stepHeader)
        let a1 = mapping.map(["C", "2026-01-05 08:37:00", "X", "", "A1"])
        #expect(a1.records.first?["StepCode"] == "02")
        #expect(a1.records.first?["StepName"] == "承办")
        #expect(a1.records.first?["Handler.Name"] == "张三")
        let a2 = mapping.map(["C", "2026-01-05 08:37:00", "李四", "", "A2"])
        #expect(a2.records.first?["StepCode"] == "03")
        #expect(a2.records.first?["Handler.Name"] == "李四", "pass_through keeps unknown values")
        let unknown = mapping.map(["C", "2026-01-05 08:37:00", "X", "", "ZZ"])
        #expect(unknown.records.isEmpty)
        #expect(unknown.errors.first?.message == "'ZZ' is not in code table steps")
    }

    @Test func fifteenDigitIdentityNumbersBecomeEighteen() throws {
        // 410103 900101 123 → insert "19": 41010319900101123; weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 give
        // 28+9+0+5+0+12+2+9+54+0+0+9+0+5+8+8+6 = 155; 155 mod 11 = 1 → check character "0".
        #expect(try IdentityNumber.normalize("410103900101123").get() == "410103199001011230")
        #expect(try IdentityNumber.normalize("41010319900101129x").get() == "41010319900101129X")
        #expect(throws: Failure.self) { try IdentityNumber.normalize("12345").get() }
        let mapping = try bind(try plan("""
            records:
              - type: Application
                fields:
                  CaseNo: CASE
                  ItemCode: { constant: XK0001 }
                  ItemName: { constant: 食品流通许可 }
                  DeptCode: { constant: "410103001" }
                  Applicant.Name: WHO
                  Applicant.IdType: { constant: "01" }
                  Applicant.IdNumber: { column: CODE, id18: true }
                  Channel: { constant: "1" }
                  AppliedAt: { column: WHEN, datetime: "yyyy-MM-dd HH:mm:ss" }
            """), stepHeader)
        #expect(mapping.map(["C", "2026-01-05 08:37:00", "王", "", "410103900101123"]).records.first?["Applicant.IdNumber"] == "410103199001011230")
    }

    /// The province refuses a resident identity number whose check character fails (PUI R204). One that fails
    /// here is most often a number a spreadsheet kept as a number: 15 significant digits, the rest zeros. It is
    /// refused at the source, where the row can be fixed, with a reason that does not show the number.
    @Test(arguments: ["410103199001011237", "410103199001011000", "41010319900101123X", "4101031990010112A0", "４１０１０３１９９００１０１１２３０"])
    func eighteenCharacterNumbersMustPassTheirCheckCharacter(number: String) throws {
        for result in [IdentityNumber.normalize(number), IdentityNumber.normalizeQuickly(number)] {
            guard case .failure(let failure) = result else {
                Issue.record("\(number) accepted")
                continue
            }
            #expect(failure.description.contains("check character"), "\(failure)")
            #expect(!failure.description.contains(number))
        }
        #expect(try IdentityNumber.normalizeQuickly("41010319900101129x").get() == "41010319900101129X")
    }

    @Test func headerIsMatchedByNameNotPosition() throws {
        let compiled = try plan(stepMapping)
        let mapping = try bind(compiled, ["\u{FEFF}CODE", " WHO ", "EXTRA", "WHEN", "CASE"])
        let record = mapping.map(["03", "王", "ignored", "2026-01-05 08:37:00", "C-9"]).records.first
        #expect(record?["CaseNo"] == "C-9")
        #expect(record?["StepCode"] == "03")
        guard case .failure(let missing) = compiled.bind(header: ["CASE", "WHO"]) else { Issue.record("bound without WHEN"); return }
        #expect(missing.message.contains("WHEN"))
    }
}

@Suite struct MappingCompileErrorTests {
    @Test func unknownTypesFieldsTablesAndFormatsAreReportedWithLines() throws {
        let errors = try compileErrors("""
            records:
              - type: Stepp
                fields:
                  CaseNo: A
              - type: Step
                when:
                  - { colum: X, in: ["02"] }
                fields:
                  CaseNo: A
                  StepCod: B
                  StepCode: { column: B, code_table: nope }
                  StepName: { constant: x }
                  Hanlder.Name: C
                  HandledAt: { column: D, datetime: "dd.MM.yy" }
            """)
        // Misspelt names get the name they are closest to, unless the mapping has that one already (StepCode).
        #expect(errors.contains { $0.hasPrefix("m.yaml:2: type: 'Stepp' is not a PUI record type (did you mean Step? one of: ") }, "\(errors)")
        #expect(errors.contains("m.yaml:7: records[1].when[0].colum: unknown key (did you mean column?)"), "a condition's typo is named, not only the missing key")
        #expect(errors.contains { $0.hasPrefix("m.yaml:10: StepCod: Step has no element StepCod; its fields are: ") }, "\(errors)")
        #expect(errors.contains("m.yaml:11: StepCode: unknown code table 'nope'"))
        #expect(errors.contains { $0.hasPrefix("m.yaml:13: Hanlder.Name: Step has no element Hanlder.Name; did you mean Handler.Name? its fields are: ") }, "\(errors)")
        #expect(errors.contains { $0.hasPrefix("m.yaml:14: HandledAt: date format 'dd.MM.yy'") })
    }

    @Test func unsupportedDateFormatLettersAreConfigErrorsNamingLineAndLetter() throws {
        func errors(_ format: String) throws -> [String] { try compileErrors(stepMapping(datetime: "\"\(format)\"")) }
        let twelveHour = try errors("yyyy年M月d日 hh:mm")
        #expect(twelveHour.contains { $0.hasPrefix("m.yaml:8: HandledAt: date format 'yyyy年M月d日 hh:mm': unsupported pattern letter 'h'") }, "\(twelveHour)")
        let weekYear = try errors("YYYY-MM-dd")
        #expect(weekYear.contains { $0.hasPrefix("m.yaml:8: HandledAt: date format 'YYYY-MM-dd': unsupported pattern letter 'Y'") }, "\(weekYear)")
        #expect(!weekYear.contains { $0.contains("needs at least") })
        #expect(try errors("yyyy-MM").contains { $0.contains("date format 'yyyy-MM' lacks d or dd") })
        #expect(try errors("yyyy-MM-ddTHH:mm").contains { $0.contains("unsupported pattern letter 'T'") && $0.contains("quote literal letters") })
        #expect(try errors("yyyy-MM-dd'T'HH:mm").isEmpty)
        #expect(try errors("yyyy年M月d日 H:mm").isEmpty)
    }

    @Test func keyFieldsAreRequired() throws {
        let errors = try compileErrors("""
            records:
              - type: Fee
                fields:
                  CaseNo: A
                  FeeName: B
            """)
        #expect(errors.contains("m.yaml:2: fields: Fee needs its key field FeeCode"))
    }

    @Test func fieldSpecKeysAreChecked() throws {
        let errors = try compileErrors("""
            records:
              - type: Step
                when:
                  - { column: X, like: "0%" }
                fields:
                  CaseNo: { column: A, constant: B }
                  StepCode: { colum: B }
            """)
        #expect(errors.contains("m.yaml:4: records[0].when[0].like: unknown key"))
        #expect(errors.contains("m.yaml:6: records[0].fields.CaseNo: 'column' and 'constant' exclude each other"))
        #expect(errors.contains("m.yaml:7: records[0].fields.StepCode.colum: unknown key (did you mean column?)"))
    }
}

/// The shipped mapping for the gen_cases.py export format, with its routing.
@Suite struct ShippedMappingTests {
    static let header = ["办件编号", "事项编码", "事项名称", "部门编码", "部门名称", "申请人", "证件号码", "环节代码", "环节名称",
                         "办理人", "办理时间", "承诺时限", "法定时限", "收费金额", "备注"]

    private func shipped() throws -> BoundMapping {
        var errors: [ConfigError] = []
        let spec = try #require(MappingSpec.load(file: repositoryRoot.appendingPathComponent("mappings/gen-cases.yaml").path, errors: &errors))
        #expect(errors.isEmpty)
        return try MappingPlan.compile(spec, schema: try #require(schema)).get().bind(header: Self.header).get()
    }

    private func row(step: String, name: String = "x", fee: String = "", item: String = "XK0008", remark: String = "") -> [String] {
        ["410103001202601050000001", item, "城市道路占用许可", "410103001", "二七区行政服务中心", "王伟", "410103199001011230",
         step, name, "李娜", "2026-01-05 08:37:00", "7", "20", fee, remark]
    }

    @Test(arguments: [
        ("01", "", ["Application", "Acceptance"]),
        ("02", "", ["Step"]), ("03", "", ["Step"]), ("04", "", ["Step"]),
        ("05", "120.00", ["Completion", "Fee"]),
        ("05", "0.00", ["Completion"]),
        ("05", " ", ["Completion"]),
        ("11", "", ["SupplementNotice"]), ("12", "", ["SupplementReceipt"]),
        ("21", "", ["SpecialStart"]), ("22", "", ["SpecialEnd"]),
    ])
    func stepCodesRouteToRecordTypes(step: String, fee: String, types: [String]) throws {
        let outcome = try shipped().map(row(step: step, fee: fee))
        #expect(outcome.errors.isEmpty, "\(outcome.errors)")
        #expect(outcome.records.map(\.type) == types)
        for record in outcome.records {
            #expect(throws: Never.self) { try schema?.normalize(record).get() }
        }
    }

    /// `nonzero` leaves the Fee out only for an amount equal to zero. An amount that is no number (Excel's `N/A`,
    /// full-width digits, an amount in words, a lone dash) used to count as zero: the fee vanished without a
    /// trace. Now the Fee record is made, its Amount fails, and the row is quarantined with the reason.
    @Test(arguments: [
        ("0", false), ("0.00", false), ("-0.00", false), ("0,000.00", false), ("￥0.00", false), ("¥ 0", false),
        ("N/A", true), ("３５０.00", true), ("叁佰伍拾元", true), ("-", true), ("abc", true), (".", true),
    ])
    func onlyAnAmountEqualToZeroLeavesTheFeeOut(fee: String, attempted: Bool) throws {
        let outcome = try shipped().map(row(step: "05", fee: fee))
        if attempted {
            #expect(outcome.records.map(\.type) == ["Completion"])
            #expect(outcome.errors.contains { $0.description.contains("收费金额") }, "\(outcome.errors)")
        } else {
            #expect(outcome.errors.isEmpty, "\(outcome.errors)")
            #expect(outcome.records.map(\.type) == ["Completion"])
        }
    }

    @Test func feeRecordUsesTheCatalogCodes() throws {
        let fee = try #require(try shipped().map(row(step: "05", fee: "120.00")).records.last)
        #expect(fee["FeeCode"] == "F000801")
        #expect(fee["FeeName"] == "城市道路占用费")
        #expect(fee["Amount"] == "120.00")
    }

    @Test func anUnknownStepCodeIsAnErrorNotASilentSkip() throws {
        let outcome = try shipped().map(row(step: "99"))
        #expect(outcome.records.isEmpty)
        #expect(outcome.errors.count == 1)
        #expect(outcome.errors.first?.message.contains("环节代码='99'") == true)
    }

    @Test func everyErrorOfARecordIsReportedNotOnlyTheFirst() throws {
        let outcome = try shipped().map(row(step: "05", fee: "1.234", item: "XK0001"))
        #expect(Set(outcome.errors.map(\.field)) == ["FeeCode", "FeeName", "Amount"], "\(outcome.errors)")
        let schema = try #require(schema)
        let draft = DraftRecord(type: "Step", fields: [("StepCode", "02"), ("StepName", "审核"), ("Bogus", "x")])
        let errors = schema.validationErrors(draft)
        #expect(errors.map(\.field) == ["CaseNo", "Handler", "HandledAt", "Bogus"], "\(errors)")
        #expect(errors.first.map { Result<NormalizedRecord, RecordValidationError>.failure($0) } == schema.normalize(draft))
    }

    @Test func aFeeForAnItemWithoutAFeeCodeIsAnError() throws {
        let outcome = try shipped().map(row(step: "05", fee: "5.00", item: "XK0001"))
        #expect(outcome.records.map(\.type) == ["Completion"])
        #expect(outcome.errors.first?.field == "FeeCode")
    }
}
