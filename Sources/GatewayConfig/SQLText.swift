/// The little esgate needs to know about a department's SQL text without parsing it: which characters are code,
/// as opposed to quoted text ('…', "…", `…`, […]) and comments (`-- …`, `/* … */`). A `?` or `;` inside a literal
/// or a comment is not a parameter marker or a terminator.
public enum SQLText {
    /// Per character of `text`: whether it is code; and whether the text ends inside a `--` comment.
    static func scan(_ text: [Character]) -> (code: [Bool], endsInLineComment: Bool) {
        enum State { case code, quoted(Character), lineComment, blockComment }
        var state = State.code
        var code = [Bool](repeating: false, count: text.count)
        var index = 0
        while index < text.count {
            let character = text[index]
            let next: Character? = index + 1 < text.count ? text[index + 1] : nil
            switch state {
            case .code:
                if character == "-" && next == "-" {
                    state = .lineComment
                    index += 1
                } else if character == "/" && next == "*" {
                    state = .blockComment
                    index += 1
                } else if character == "'" || character == "\"" || character == "`" {
                    state = .quoted(character)
                } else if character == "[" {
                    // SQL Server's identifier quote (identifier_quote "["): `[Rate?]` is a column name. PostgreSQL's
                    // array subscripts (a[1], a[lo:hi]) are skipped too: a marker inside one is no longer seen.
                    state = .quoted("]")
                } else {
                    code[index] = true
                }
            // A doubled quote ('it''s', [a]]b]) closes and reopens: both halves are quoted text.
            case .quoted(let quote): if character == quote { state = .code }
            case .lineComment: if character.isNewline { state = .code }
            case .blockComment:
                if character == "*" && next == "/" {
                    state = .code
                    index += 1
                }
            }
            index += 1
        }
        if case .lineComment = state { return (code, true) }
        return (code, false)
    }

    /// The parameter markers of a statement outside literals and comments: `?`, and Oracle-style `:name`
    /// (a colon after a space, `(`, `,` or a comparison, before a letter: not PostgreSQL's `::type` or a slice
    /// `a[lo:hi]`).
    public static func parameterMarkers(_ sql: String) -> [String] {
        let text = Array(sql)
        let code = scan(text).code
        var markers: [String] = []
        for index in text.indices where code[index] {
            if text[index] == "?" { markers.append("?") }
            guard text[index] == ":", index + 1 < text.count, text[index + 1].isLetter || text[index + 1] == "_",
                  index == 0 || text[index - 1].isWhitespace || "(,=<>".contains(text[index - 1]) else { continue }
            markers.append(":" + String(text[(index + 1)...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }))
        }
        return markers
    }

    /// The clause that limits the rows of the statement as a whole, outside parentheses: `LIMIT n`, `OFFSET n`,
    /// `TOP n`, `FETCH FIRST|NEXT`, or `ROWNUM <`; nil when there is none.
    public static func rowLimit(_ sql: String) -> String? {
        let text = Array(sql)
        let code = scan(text).code
        var depth = 0
        var index = 0
        while index < text.count {
            defer { index += 1 }
            guard code[index] else { continue }
            if text[index] == "(" { depth += 1 } else if text[index] == ")" { depth = max(0, depth - 1) }
            guard depth == 0, text[index].isLetter, index == 0 || !(text[index - 1].isLetter || text[index - 1].isNumber || text[index - 1] == "_") else { continue }
            let raw = text[index...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            let word = String(raw).uppercased()
            let after = text[(index + raw.count)...].drop { $0.isWhitespace }
            let nextWord = String(after.prefix { $0.isLetter }).uppercased()
            switch word {
            // Followed by a count, not a column that happens to be named so (`SELECT top, offset FROM t`).
            case "LIMIT", "OFFSET", "TOP":
                if after.first?.isNumber == true || after.first == "(" { return word }
            case "FETCH" where nextWord == "FIRST" || nextWord == "NEXT": return word + " " + nextWord
            case "ROWNUM" where after.first == "<": return word
            default: index += raw.count - 1
            }
        }
        return nil
    }

    /// `query` without the statement terminators (`;`) it ends with, even when comments follow them
    /// (`SELECT … ; -- nightly view`), and without trailing whitespace: fit to go inside a subquery.
    public static func withoutTerminator(_ query: String) -> String {
        var text = Array(query)
        while true {
            let code = scan(text).code
            guard let last = text.indices.last(where: { code[$0] && !text[$0].isWhitespace }), text[last] == ";" else { break }
            text.removeSubrange(last...)
        }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }

    /// `query` as a statement of its own: without terminators, and with a line break after a final `--` comment,
    /// because psqlODBC appends to the text it sends (with UseDeclareFetch it fails with a bare "Error while
    /// executing the query" when the comment swallows that).
    public static func statement(_ query: String) -> String {
        let text = withoutTerminator(query)
        return scan(Array(text)).endsInLineComment ? text + "\n" : text
    }
}
