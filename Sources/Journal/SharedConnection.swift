import SQLiteSupport

extension Journal {
    /// The journal's own SQLite connection, for consumers that keep derived tables in the same database and must
    /// commit them in the same transaction as the records they append and the cursor they advance (the
    /// supervision engine). Use it only between `begin()`/`commit()` or inside `batch {}` of this journal.
    public var connection: SQLiteDatabase { database }
}
