/// The journal's compact form of a record body (see `StoredBody` in the Journal module, which encodes, decodes and
/// stores it): its markers and its table of element names. Defined here, in the model, so that the ordinary-row
/// path (`RecordLayout`) can write a record's compact form while it serializes the record, instead of the journal
/// parsing the XML it was just given to find its tags again.
///
/// Layout: `marker`, then
/// - `namedStart n`: start tag of the element named `elementNames[n]`;
/// - `literalStart name literalEnd`: start tag of an element whose name is not in the table;
/// - `end`: end tag of the innermost open element;
/// - any other byte: content, verbatim (in the journal's canonical escaping).
/// The markers are control characters XML 1.0 cannot carry, even escaped, so content never contains them.
public enum CompactBodyForm {
    /// The first byte of every compact body (an XML body starts with `<`).
    public static let marker: UInt8 = 0x01
    public static let namedStart: UInt8 = 0x02
    public static let literalStart: UInt8 = 0x03
    public static let literalEnd: UInt8 = 0x04
    public static let end: UInt8 = 0x05
    /// Bodies nested deeper are not encoded (stored as XML): PUI records nest three levels at most.
    public static let maxDepth = 16
    /// Names longer than this, or not starting with an ASCII byte, are always written literally.
    public static let maxTableNameLength = 32

    /// Element names by code. Journals on disk depend on these positions: never reorder or remove a name,
    /// only append (at most 256). `elementNamesAreFrozen` in the tests holds the list to its released form.
    public static let elementNames: [String] = [
        "Name", "IdType", "IdNumber", "StaffId", "CaseNo", "ItemCode", "ItemName", "DeptCode", "Applicant", "Channel",
        "AppliedAt", "Decision", "Reason", "Handler", "WindowNo", "AcceptedAt", "PromisedLimit", "PromisedUnit",
        "LegalLimit", "LegalUnit", "StepCode", "StepName", "HandledAt", "Opinion", "NotifiedAt", "Missing",
        "ReceivedAt", "Kind", "StartedAt", "ExtensionDays", "ApprovedBy", "EndedAt", "Result", "CertificateNo",
        "CompletedAt", "FeeCode", "FeeName", "Amount", "Reduction", "ReductionApproval", "ReceiptNo", "ChargedAt",
        "LevyNo", "Payer", "Base", "Rate", "AmountDue", "AmountCollected", "AssessedAt", "CollectedAt", "RemittedAt",
        "Party", "ViolationCode", "ViolationName", "Source", "FiledAt", "HearingRequested", "FineAmount",
        "Confiscation", "DecisionNo", "DecidedAt", "Stage", "EvaluationId", "Staff", "Rating", "Comment", "RatedAt",
        "ComplaintNo", "Complainant", "Category", "Content", "State", "StateAt", "Reply", "Substantiated",
        "CameraCode", "HallCode", "Online", "StatusAt", "PlaybackUrl", "AlertId", "RuleCode", "Level", "SubjectType",
        "SubjectKey", "RaisedAt", "Detail", "ResponseDue", "Explanation", "Period", "CasesCompleted",
        "CompletedOnTime", "CompletedEarly", "OnTimeRate", "Prompts", "YellowCards", "RedCards",
        "ComplaintsSubstantiated", "Evaluations", "SatisfactionRate", "LateReports", "Total", "Grade",
        "Application", "Acceptance", "Step", "SupplementNotice", "SupplementReceipt", "SpecialStart", "SpecialEnd",
        "Completion", "Fee", "Levy", "PenaltyCase", "PenaltyStep", "Evaluation", "Complaint", "Camera", "Alert",
        "Score", "Division", "Calendar", "Day", "Item", "Code", "Standard", "RemitLimit", "DecisionLimit",
        "Violation", "FineMin", "FineMax",
    ]

    /// Codes by the name's bytes: names are compared as the encoder compares them, byte for byte (a `String`
    /// key would also match a canonically equivalent spelling, which the encoder writes literally).
    private static let codes: [[UInt8]: UInt8] = {
        var codes: [[UInt8]: UInt8] = [:]
        for (index, name) in elementNames.enumerated() where index < 256 && name.utf8.count <= maxTableNameLength
            && (name.utf8.first ?? 0x80) < 0x80 {
            codes[Array(name.utf8)] = UInt8(index)
        }
        return codes
    }()

    /// The bytes that stand for the start tag of the element named `name` (UTF-8): its code, or the name written
    /// literally.
    public static func startTag(_ name: [UInt8]) -> [UInt8] {
        if let code = codes[name] { return [namedStart, code] }
        return [literalStart] + name + [literalEnd]
    }
}
