import CSQLite

/// A value bound to or read from an SQL statement.
public enum SQLValue: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(nilLiteral: ()) { self = .null }

    public init(_ value: String?) { self = value.map(SQLValue.text) ?? .null }
    public init(_ value: Int64?) { self = value.map(SQLValue.integer) ?? .null }
    public init(_ value: Int?) { self = value.map { .integer(Int64($0)) } ?? .null }
    public init(_ value: Double?) { self = value.map(SQLValue.real) ?? .null }
    public init(_ value: Bool) { self = .integer(value ? 1 : 0) }
}

/// The current row of a query, on either backend. Valid only inside the closure it is passed to.
public struct Row {
    enum Source {
        case sqlite(OpaquePointer)
        case postgres(PostgresRow)
    }

    let source: Source

    init(handle: OpaquePointer) { source = .sqlite(handle) }
    init(postgres row: PostgresRow) { source = .postgres(row) }

    public var columnCount: Int {
        switch source {
        case .sqlite(let handle): Int(sqlite3_column_count(handle))
        case .postgres(let row): row.columnCount
        }
    }

    public func isNull(_ index: Int) -> Bool {
        switch source {
        case .sqlite(let handle): sqlite3_column_type(handle, Int32(index)) == SQLITE_NULL
        case .postgres(let row): row.isNull(index)
        }
    }

    public func int64(_ index: Int) -> Int64 {
        switch source {
        case .sqlite(let handle): sqlite3_column_int64(handle, Int32(index))
        case .postgres(let row): row.int64(index)
        }
    }

    public func int(_ index: Int) -> Int { Int(int64(index)) }

    public func double(_ index: Int) -> Double {
        switch source {
        case .sqlite(let handle): sqlite3_column_double(handle, Int32(index))
        case .postgres(let row): row.double(index)
        }
    }

    public func text(_ index: Int) -> String {
        switch source {
        case .sqlite(let handle):
            guard let pointer = sqlite3_column_text(handle, Int32(index)) else { return "" }
            let count = Int(sqlite3_column_bytes(handle, Int32(index)))
            return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
        case .postgres(let row):
            return row.text(index)
        }
    }

    public func optionalText(_ index: Int) -> String? { isNull(index) ? nil : text(index) }
    public func optionalInt64(_ index: Int) -> Int64? { isNull(index) ? nil : int64(index) }

    public func blob(_ index: Int) -> [UInt8] {
        switch source {
        case .sqlite(let handle):
            let count = Int(sqlite3_column_bytes(handle, Int32(index)))
            guard count > 0, let pointer = sqlite3_column_blob(handle, Int32(index)) else { return [] }
            return Array(UnsafeRawBufferPointer(start: pointer, count: count))
        case .postgres(let row):
            return row.blob(index)
        }
    }

    /// `body` with a blob's bytes where the row keeps them (no copy on SQLite); empty for NULL.
    public func withBlob<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch source {
        case .sqlite(let handle):
            let count = Int(sqlite3_column_bytes(handle, Int32(index)))
            guard count > 0, let pointer = sqlite3_column_blob(handle, Int32(index)) else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
            return try body(UnsafeRawBufferPointer(start: pointer, count: count))
        case .postgres(let row):
            return try row.blob(index).withUnsafeBytes(body)
        }
    }

    public func value(_ index: Int) -> SQLValue {
        switch source {
        case .sqlite(let handle):
            switch sqlite3_column_type(handle, Int32(index)) {
            case SQLITE_INTEGER: .integer(int64(index))
            case SQLITE_FLOAT: .real(double(index))
            case SQLITE_TEXT: .text(text(index))
            case SQLITE_BLOB: .blob(blob(index))
            default: .null
            }
        case .postgres(let row):
            row.value(index)
        }
    }
}
