import ArgumentParser
import Foundation
import ModelKeepStorage

/// A destination that does not exist yet, or is an empty directory.
func requireEmpty(_ path: String) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return }
    guard isDirectory.boolValue, (try FileManager.default.contentsOfDirectory(atPath: path)).isEmpty else {
        throw ValidationError("\(path) exists and is not an empty directory; nothing was written")
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent snapshot of a data directory (database and the chunks it uses) to DEST.",
        discussion: """
            Works while the server runs: the database is copied with SQLite's online backup API \
            (writers go on), and the chunks it references are hard-linked where DEST is on the \
            same filesystem, copied otherwise. Unfinished resumable uploads are left out. \
            Restore with `modelkeep restore DEST --data-dir NEW`.
            """
    )

    @OptionGroup var common: CommonOptions
    @Argument(help: "Where to write the backup (a new or empty directory).") var destination: String

    func run() throws {
        do {
            let settings = try common.settings()
            guard settings.databaseBackend == "sqlite" else {
                throw ValidationError("backup snapshots SQLite's modelkeep.db; with db_backend=postgres, back up the database with "
                                      + "pg_dump (or your platform's PostgreSQL backups) and the chunks with the bucket's own tools")
            }
            let source = DataDirectory(path: settings.dataDir)
            guard FileManager.default.fileExists(atPath: source.databasePath) else {
                throw ValidationError("no ModelKeep data in \(source.path) (no modelkeep.db)")
            }
            try requireEmpty(destination)
            if settings.blobBackend == "s3" {
                try backupDatabaseOnly(source: source, settings: settings)
                return
            }
            // The backup has a data directory's layout; the stores name every chunk's file.
            let from = try BlobStore(directory: source), to = try BlobStore(directory: DataDirectory(path: destination))
            // Chunks first, then the snapshot: a chunk published after this pass is young, so
            // garbage collection (which spares young chunks) cannot take it before it is linked below.
            for chunk in from.allChunks() { try from.linkOrCopy(chunk.sha256, into: to) }
            let snapshotPath = DataDirectory(path: destination).databasePath
            try SQLiteConnection(path: source.databasePath, readOnly: true).backup(to: snapshotPath)
            let snapshot = try SQLiteConnection(path: snapshotPath)
            try snapshot.execute("DELETE FROM upload_sessions WHERE artifact_id IS NULL; DELETE FROM upload_chunks")
            let referenced = try snapshot.query("SELECT DISTINCT sha256 FROM artifact_chunks", []) { $0.text(0) }
            var linked = 0, copied = 0, bytes: Int64 = 0
            for sha in referenced {
                guard to.contains(sha) || from.contains(sha) else {
                    throw ValidationError("chunk \(sha) is referenced but missing from \(source.path); run modelkeep fsck")
                }
                if try from.linkOrCopy(sha, into: to) { linked += 1 } else { copied += 1 }
                bytes += to.storedSize(sha) ?? 0
            }
            // Chunks nothing in the snapshot uses (garbage awaiting gc) are not carried over.
            let wanted = Set(referenced)
            for chunk in to.allChunks() where !wanted.contains(chunk.sha256) {
                try to.remove(chunk.sha256)
            }
            let artifacts = try snapshot.queryFirst("SELECT count(*) FROM artifacts", []) { $0.int(0) } ?? 0
            let models = try snapshot.queryFirst("SELECT count(*) FROM models", []) { $0.int(0) } ?? 0
            print("backed up \(models) model(s), \(artifacts) artifact(s), \(referenced.count) chunk(s) of \(bytes) bytes "
                  + "(\(linked) hard-linked, \(copied) copied) to \(destination)")
        } catch {
            fail("\(error)")
        }
    }
}

extension Backup {
    /// With chunks in a bucket, a backup is the database: the chunks stay where they are.
    func backupDatabaseOnly(source: DataDirectory, settings: Settings) throws {
        let snapshotPath = DataDirectory(path: destination).databasePath
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        try SQLiteConnection(path: source.databasePath, readOnly: true).backup(to: snapshotPath)
        let snapshot = try SQLiteConnection(path: snapshotPath)
        try snapshot.execute("DELETE FROM upload_sessions WHERE artifact_id IS NULL; DELETE FROM upload_chunks")
        let chunks = try snapshot.queryFirst("SELECT count(DISTINCT sha256) FROM artifact_chunks", []) { $0.int(0) } ?? 0
        let artifacts = try snapshot.queryFirst("SELECT count(*) FROM artifacts", []) { $0.int(0) } ?? 0
        let models = try snapshot.queryFirst("SELECT count(*) FROM models", []) { $0.int(0) } ?? 0
        print("backed up the database (\(models) model(s), \(artifacts) artifact(s)) to \(destination); its \(chunks) chunk(s) stay in "
              + "\(try settings.s3Configuration().summary), which this backup does not copy (see README: backups with blob_backend = s3)")
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a new data directory (--data-dir) from a backup made by `modelkeep backup`.",
        discussion: "The data directory must not exist or be empty. Check the result with `modelkeep fsck --full`."
    )

    @OptionGroup var common: CommonOptions
    @Argument(help: "The backup directory.") var source: String

    func run() throws {
        do {
            let settings = try common.settings()
            guard settings.databaseBackend == "sqlite" else {
                throw ValidationError("restore makes a data directory with SQLite's modelkeep.db; to move a restored registry "
                                      + "to PostgreSQL, restore it, then run modelkeep db migrate-to-postgres")
            }
            guard FileManager.default.fileExists(atPath: source + "/modelkeep.db") else {
                throw ValidationError("\(source) holds no modelkeep.db: not a ModelKeep backup")
            }
            try requireEmpty(settings.dataDir)
            let target = DataDirectory(path: settings.dataDir)
            try target.create()
            let lock = try target.lock()
            try FileManager.default.copyItem(atPath: source + "/modelkeep.db", toPath: target.databasePath)
            let from = try BlobStore(directory: DataDirectory(path: source)), to = try BlobStore(directory: target)
            var linked = 0, copied = 0
            for chunk in from.allChunks() {
                if try from.linkOrCopy(chunk.sha256, into: to) { linked += 1 } else { copied += 1 }
            }
            let database = try target.openDatabase(options: settings.databaseOptions)
            let applied = try MigrationRunner().migrate(database)
            _ = consume lock
            print("restored \(linked + copied) chunk(s) (\(linked) hard-linked, \(copied) copied) into \(target.path)"
                  + (applied.isEmpty ? "" : "; applied migrations \(applied.joined(separator: ", "))"))
        } catch {
            fail("\(error)")
        }
    }
}
