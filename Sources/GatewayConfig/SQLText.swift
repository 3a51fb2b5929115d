/// The little esgate needs to know about a department's SQL text without parsing it: which characters are code,
/// as opposed to quoted text ('…', "…", `…`, […]) and comments (`-- …`, `/* … */`). A `?` or `;` inside a literal
/// or a comment is not a parameter marker or a terminator.
public enum SQLText {
    /// Per character of `text`: whether it is code; and whether the text ends inside a `--` comment.
    /// `dialects: true` reads what only some servers accept as quoting: MySQL's backslash escapes in literals
    /// (`'it\'s'`), PostgreSQL's dollar quotes (`$$…$$`) and nested block comments. Without knowing the server, a
    /// check that must not refuse a valid query asks both readings (`certainlyCode`).
    static func scan(_ text: [Character], dialects: Bool = false) -> (code: [Bool], endsInLineComment: Bool) {
        enum State { case code, quoted(Character), dollarQuoted(tag: [Character]), lineComment, blockComment(depth: Int) }
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
                    state = .blockComment(depth: 1)
                    index += 1
                } else if dialects, character == "$", let tag = dollarTag(text, at: index) {
                    // PostgreSQL: $$…$$ or $tag$…$tag$ (not a `$` inside a name such as col$1).
                    state = .dollarQuoted(tag: tag)
                    index += tag.count - 1
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
            case .quoted(let quote):
                if dialects && character == "\\" && quote == "'" {
                    index += 1   // MySQL: the escaped character is text
                } else if character == quote {
                    state = .code
                }
            case .dollarQuoted(let tag):
                if character == "$", text[index...].starts(with: tag) {
                    state = .code
                    index += tag.count - 1
                }
            case .lineComment: if character.isNewline { state = .code }
            case .blockComment(let depth):
                if character == "*" && next == "/" {
                    state = depth > 1 ? .blockComment(depth: depth - 1) : .code
                    index += 1
                } else if dialects && character == "/" && next == "*" {
                    state = .blockComment(depth: depth + 1)
                    index += 1
                }
            }
            index += 1
        }
        if case .lineComment = state { return (code, true) }
        return (code, false)
    }

    /// The dollar-quote tag (`$$`, `$body$`) starting at `index`, or nil.
    private static func dollarTag(_ text: [Character], at index: Int) -> [Character]? {
        if index > 0, text[index - 1].isLetter || text[index - 1].isNumber || text[index - 1] == "_" { return nil }
        var end = index + 1
        while end < text.count, text[end].isLetter || text[end] == "_" || (end > index + 1 && text[end].isNumber) { end += 1 }
        guard end < text.count, text[end] == "$" else { return nil }
        return Array(text[index...end])
    }

    /// Per character: code in both readings of `scan`, standard SQL and the dialects'. A parameter marker is
    /// reported only where both agree, so a `?` that MySQL or PostgreSQL quotes never refuses a valid query (one
    /// missed behind such a literal fails the first poll with the driver's 07002 instead).
    static func certainlyCode(_ text: [Character]) -> [Bool] {
        let standard = scan(text).code, dialects = scan(text, dialects: true).code
        return zip(standard, dialects).map { $0 && $1 }
    }

    /// Per character: code in either reading. A row limit missed would lose rows without a word, so it is looked
    /// for wherever some server could read code; a literal that only looks like a limit is refused with its name.
    static func possiblyCode(_ text: [Character]) -> [Bool] {
        let standard = scan(text).code, dialects = scan(text, dialects: true).code
        return zip(standard, dialects).map { $0 || $1 }
    }

    /// The parameter markers of a statement outside literals and comments: `?`, and Oracle-style `:name`
    /// (a colon after a space, `(`, `,` or a comparison, before a letter: not PostgreSQL's `::type` or a slice
    /// `a[lo:hi]`).
    public static func parameterMarkers(_ sql: String) -> [String] {
        let text = Array(sql)
        let code = certainlyCode(text)
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
        let code = possiblyCode(text)
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
                // `TOP 100 PERCENT` and `OFFSET 0 ROWS` (what SQL Server views carry to allow an ORDER BY) keep
                // every row.
                let count = String(after.prefix { $0.isNumber })
                let rest = String(after.dropFirst(count.count).drop { $0.isWhitespace }.prefix { $0.isLetter }).uppercased()
                if word == "TOP", count == "100", rest == "PERCENT" { break }
                if word == "OFFSET", !count.isEmpty, count.allSatisfy({ $0 == "0" }) { break }
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
