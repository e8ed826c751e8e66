import ModelKeepChunking
import ModelKeepStorage

/// What an artifact is, as ModelBox's FileType has it.
public enum FileType: String, Sendable, CaseIterable {
    case model, checkpoint, text, image, audio, video

    /// The type a file name's extension suggests, if any.
    public static func guess(path: String) -> FileType? {
        switch Self.fileExtension(path) {
        case "pt", "pth", "onnx", "safetensors", "bin", "h5", "keras", "pb", "tflite", "gguf", "ggml", "pkl", "joblib",
             "mlmodel", "engine", "torchscript", "mar", "model":
            .model
        case "ckpt", "checkpoint":
            .checkpoint
        case "txt", "json", "yaml", "yml", "md", "csv", "tsv", "cfg", "toml", "ini", "xml", "log", "py":
            .text
        case "png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff", "svg":
            .image
        case "wav", "mp3", "flac", "ogg", "m4a", "aac":
            .audio
        case "mp4", "avi", "mov", "mkv", "webm":
            .video
        default:
            nil
        }
    }

    /// The media type for a file name, `application/octet-stream` when unknown.
    public static func mimeType(path: String) -> String {
        switch Self.fileExtension(path) {
        case "json": "application/json"
        case "yaml", "yml": "application/yaml"
        case "txt", "log", "cfg", "ini": "text/plain; charset=utf-8"
        case "md": "text/markdown; charset=utf-8"
        case "csv": "text/csv"
        case "toml": "application/toml"
        case "xml": "application/xml"
        case "py": "text/x-python"
        case "png": "image/png"
        case "jpg", "jpeg": "image/jpeg"
        case "gif": "image/gif"
        case "webp": "image/webp"
        case "svg": "image/svg+xml"
        case "wav": "audio/wav"
        case "mp3": "audio/mpeg"
        case "flac": "audio/flac"
        case "mp4": "video/mp4"
        case "webm": "video/webm"
        case "zip": "application/zip"
        case "gz", "tgz": "application/gzip"
        case "onnx": "application/onnx"
        default: "application/octet-stream"
        }
    }

    static func fileExtension(_ path: String) -> String {
        let name = path.split(separator: "/").last ?? ""
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return name[name.index(after: dot)...].lowercased()
    }
}

/// A file of a parent: uploaded into the chunk store, or tracked by URI.
public struct Artifact: Sendable, Equatable {
    public var id: String
    public var parentID: String
    public var modelID: String
    public var path: String
    public var size: Int64?
    public var sha256: String?
    public var fileType: FileType?
    public var mimeType: String
    /// Set for a tracked artifact, whose bytes live elsewhere.
    public var uri: String?
    /// `corrupt` once fsck --repair found one of its chunks damaged.
    public var state: String
    public var createdAt: Int64
    public var updatedAt: Int64
    /// The chunks, in order; loaded for downloads only.
    public var chunks: [ChunkReference] = []
}

/// An upload the registry has checked and is ready to take bytes for.
public struct ArtifactUpload: Sendable {
    public let parentID: String
    public let modelID: String
    public let namespace: String
    public let path: String
    public let overwrite: Bool
    public let fileType: FileType?
    public let mimeType: String
}
