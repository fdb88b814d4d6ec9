// SQLiteLink: the only Swift that touches the SQLite C API (Sources/CSQLite). Being written (issue 13): a thin,
// GRDB-shaped layer for StationStore — connections, statements, rows, transactions, named migrations.
