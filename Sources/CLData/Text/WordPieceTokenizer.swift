import CLTensor
import Foundation

/// BERT's WordPiece tokenizer, id for id the same as Hugging Face `tokenizers` running a
/// `tokenizer.json` made of BertNormalizer + BertPreTokenizer + WordPiece + TemplateProcessing
/// ("[CLS] $A [SEP]"), as all-MiniLM-L6-v2 and the BERT checkpoints ship it.
///
/// One text goes through, in this order (the order is HF's, and it matters):
///   1. special tokens: the vocabulary's added tokens ([PAD], [UNK], [CLS], [SEP], [MASK]) are found
///      in the raw text first, exactly as written (leftmost, then longest), and kept whole; the
///      text between them goes through steps 2-4 separately;
///   2. normalisation (BertNormalizer): clean text (drop U+0000, U+FFFD and control/format/
///      private-use characters; every whitespace character becomes a space), spaces around CJK
///      ideographs, strip accents (NFD, then drop nonspacing marks), lowercase (per character,
///      full mapping, no context: "Σ" is always "σ");
///   3. pre-tokenisation (BertPreTokenizer): split on whitespace (dropped) and on punctuation (each
///      punctuation character a word of its own);
///   4. WordPiece: greedy longest match first, continuation pieces looked up with the "##" prefix;
///      a word longer than `maxInputCharsPerWord` characters, or with a part that matches nothing,
///      is the one unknown token.
/// "Character" is a Unicode scalar throughout, as it is a Rust `char` in HF.
///
/// HF takes general categories from the Rust crate `unicode_categories`, whose tables are Unicode
/// 8.0; Swift's are newer. So a category test here counts only scalars that Unicode 8.0 had
/// (`properties.age`), with the few scalars whose category changed since listed explicitly.
/// `TokenizerTests` checks every scalar against HF (the `every_scalar` hash in the fixture).
///
/// All work is on Unicode scalars (UInt32) and UTF-8 bytes in scratch arrays; the vocabulary is an
/// open-addressing hash table over UTF-8 bytes, so a candidate piece is looked up without building
/// a String.
public final class WordPieceTokenizer: @unchecked Sendable {
    public let clsID: Int32, sepID: Int32, padID: Int32, unknownID: Int32
    public let lowercase: Bool, stripAccents: Bool, handleChineseChars: Bool, cleanText: Bool
    public let unknownToken: String, continuingPrefix: String, maxInputCharsPerWord: Int
    /// Where the vocabulary came from (a file path, or what the caller said); errors name it.
    public let source: String
    /// Token by id.
    public let vocabulary: [String]
    /// SHA-256 hex over the vocabulary, the added tokens and every setting: equal fingerprints
    /// give equal ids for every text (a cache key for tokenised data).
    public let fingerprint: String
    public var vocabularySize: Int { vocabulary.count }

    /// Every vocabulary entry, as a piece that starts a word.
    let wordStartPieces: PieceTable
    /// Entries that start with `continuingPrefix`, keyed without it: pieces inside a word.
    let continuationPieces: PieceTable
    /// Special tokens matched in the raw text before normalisation (HF's added tokens with
    /// `normalized: false`), as scalars, with their ids.
    let addedTokens: [(scalars: [UInt32], id: Int32)]
    /// The distinct first scalars of the added tokens ("[" for BERT's): a cheap test, at each
    /// scalar of a text, before trying the tokens themselves.
    let addedTokenFirstScalars: [UInt32]

    /// The standard BERT special tokens. Loaded from a vocabulary (not a tokenizer.json), these are
    /// the added tokens, as transformers' `BertTokenizerFast` makes them.
    public static let bertSpecialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    /// - Parameters:
    ///   - vocabulary: tokens by id (vocab.txt's lines).
    ///   - stripAccents: nil follows `lowercase`, as in HF's BertNormalizer.
    ///   - addedTokens: special tokens matched whole in the raw text, with their ids; nil takes
    ///     those of `bertSpecialTokens` that the vocabulary has.
    ///   - source: named in errors (a file path when loaded from one).
    public init(vocabulary: [String], lowercase: Bool = true, stripAccents: Bool? = nil, handleChineseChars: Bool = true,
                cleanText: Bool = true, unknownToken: String = "[UNK]", continuingPrefix: String = "##",
                maxInputCharsPerWord: Int = 100, source: String = "vocabulary",
                addedTokens: [(content: String, id: Int32)]? = nil) throws {
        self.lowercase = lowercase
        self.stripAccents = stripAccents ?? lowercase
        self.handleChineseChars = handleChineseChars
        self.cleanText = cleanText
        self.unknownToken = unknownToken
        self.continuingPrefix = continuingPrefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.source = source
        self.vocabulary = vocabulary

        guard maxInputCharsPerWord >= 1 else {
            throw DataError(path: source, message: "max_input_chars_per_word is \(maxInputCharsPerWord); it must be at least 1")
        }
        guard !continuingPrefix.isEmpty else { throw DataError(path: source, message: "continuing_subword_prefix is empty") }

        // Token -> id; a token listed twice takes its later id, as HF's vocab.txt reader does.
        var idOf: [String: Int32] = [:]
        idOf.reserveCapacity(vocabulary.count)
        for (id, token) in vocabulary.enumerated() { idOf[token] = Int32(id) }

        let required = ["[CLS]", "[SEP]", "[PAD]", unknownToken]
        let missing = required.filter { idOf[$0] == nil }
        guard missing.isEmpty else {
            throw DataError(path: source, message: "the vocabulary (\(vocabulary.count) tokens) has no \(missing.joined(separator: ", ")); "
                + "a BERT vocabulary needs [CLS], [SEP], [PAD] and the unknown token \(unknownToken)")
        }
        clsID = idOf["[CLS]"]!; sepID = idOf["[SEP]"]!; padID = idOf["[PAD]"]!; unknownID = idOf[unknownToken]!

        var startKeys: [[UInt8]] = [], startIDs: [Int32] = []
        var continuationKeys: [[UInt8]] = [], continuationIDs: [Int32] = []
        let prefixBytes = Array(continuingPrefix.utf8)
        for (id, token) in vocabulary.enumerated() {
            let bytes = Array(token.utf8)
            startKeys.append(bytes); startIDs.append(Int32(id))
            if bytes.count >= prefixBytes.count && bytes[0..<prefixBytes.count].elementsEqual(prefixBytes) {
                continuationKeys.append(Array(bytes[prefixBytes.count...])); continuationIDs.append(Int32(id))
            }
        }
        wordStartPieces = PieceTable(keys: startKeys, ids: startIDs)
        continuationPieces = PieceTable(keys: continuationKeys, ids: continuationIDs)

        let added = addedTokens ?? Self.bertSpecialTokens.compactMap { t in idOf[t].map { (content: t, id: $0) } }
        for token in added where token.content.isEmpty || token.id < 0 || Int(token.id) >= vocabulary.count || vocabulary[Int(token.id)] != token.content {
            throw DataError(path: source, message: "added token \"\(token.content)\" with id \(token.id) is empty or not that token of the vocabulary (\(vocabulary.count) tokens)")
        }
        self.addedTokens = added.map { (scalars: $0.content.unicodeScalars.map { $0.value }, id: $0.id) }
        addedTokenFirstScalars = Array(Set(self.addedTokens.map { $0.scalars[0] })).sorted()

        // Fingerprint: a format tag, the settings, the added tokens, then every token. Each string
        // is preceded by its UTF-8 length, so no two different inputs give the same byte stream.
        var hash = SHA256Stream()
        func string(_ s: String) { hash.update("\(s.utf8.count):"); hash.update(s) }
        hash.update("clbench-wordpiece-v1\n")
        hash.update("lowercase=\(lowercase) strip_accents=\(self.stripAccents) handle_chinese_chars=\(handleChineseChars) clean_text=\(cleanText) max_input_chars_per_word=\(maxInputCharsPerWord)\n")
        hash.update("unk="); string(unknownToken)
        hash.update("prefix="); string(continuingPrefix)
        hash.update("added \(added.count)\n")
        for token in added { hash.update("\(token.id) "); string(token.content) }
        hash.update("vocabulary \(vocabulary.count)\n")
        for token in vocabulary { string(token) }
        fingerprint = hash.finalize()
    }

    // MARK: Loading

    /// Loads from a Hugging Face model folder: tokenizer.json when present, else vocab.txt with the
    /// settings of tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars,
    /// unk_token) when present. Padding and truncation settings in tokenizer.json are ignored:
    /// `encode` never pads, and truncates to its `maxLength`.
    public static func load(folder: String) throws -> WordPieceTokenizer {
        let tokenizerJSON = (folder as NSString).appendingPathComponent("tokenizer.json")
        let vocabTXT = (folder as NSString).appendingPathComponent("vocab.txt")
        if FileManager.default.fileExists(atPath: tokenizerJSON) { return try load(tokenizerJSON: tokenizerJSON) }
        if FileManager.default.fileExists(atPath: vocabTXT) { return try load(vocabTXT: vocabTXT) }
        throw DataError(path: folder, message: "neither tokenizer.json nor vocab.txt is in this folder")
    }

    /// A tokenizer.json whose model is WordPiece, normaliser BertNormalizer (or none), and
    /// pre-tokeniser BertPreTokenizer. Anything else would tokenise differently, so it is an error
    /// naming the field.
    public static func load(tokenizerJSON path: String) throws -> WordPieceTokenizer {
        let root = try readJSONObject(path)
        guard let model = root["model"] as? [String: Any] else { throw DataError(path: path, message: "no \"model\" object") }
        let modelType = model["type"] as? String
        guard modelType == "WordPiece" else {
            throw DataError(path: path, message: "model.type is \(modelType.map { "\"\($0)\"" } ?? "missing"); only \"WordPiece\" is supported")
        }
        guard let vocabMap = model["vocab"] as? [String: Any] else { throw DataError(path: path, message: "model.vocab is missing or not an object") }
        // Ids must be exactly 0..<count, so the vocabulary is an array by id.
        var vocabulary = [String?](repeating: nil, count: vocabMap.count)
        for (token, value) in vocabMap {
            guard let id = value as? Int, id >= 0, id < vocabMap.count, vocabulary[id] == nil else {
                throw DataError(path: path, message: "model.vocab: token \"\(token)\" has id \(value); ids must be 0..<\(vocabMap.count), each once")
            }
            vocabulary[id] = token
        }
        let unknownToken = try field(model, "unk_token", in: path, prefix: "model.", default: "[UNK]")
        let continuingPrefix = try field(model, "continuing_subword_prefix", in: path, prefix: "model.", default: "##")
        let maxChars: Int = try field(model, "max_input_chars_per_word", in: path, prefix: "model.", default: 100)

        // No normaliser at all is the same as BertNormalizer with every step off.
        var cleanText = false, handleChineseChars = false, lowercase = false
        var stripAccents: Bool? = false
        if let normalizer = root["normalizer"] as? [String: Any] {
            let type = normalizer["type"] as? String
            guard type == "BertNormalizer" else {
                throw DataError(path: path, message: "normalizer.type is \(type.map { "\"\($0)\"" } ?? "missing"); only \"BertNormalizer\" is supported")
            }
            cleanText = try field(normalizer, "clean_text", in: path, prefix: "normalizer.", default: true)
            handleChineseChars = try field(normalizer, "handle_chinese_chars", in: path, prefix: "normalizer.", default: true)
            lowercase = try field(normalizer, "lowercase", in: path, prefix: "normalizer.", default: true)
            switch normalizer["strip_accents"] {
            case nil, is NSNull: stripAccents = nil
            case let value as Bool: stripAccents = value
            default: throw DataError(path: path, message: "normalizer.strip_accents must be true, false or null")
            }
        } else if let normalizer = root["normalizer"], !(normalizer is NSNull) {
            throw DataError(path: path, message: "normalizer is not an object")
        }
        let preTokenizerType = (root["pre_tokenizer"] as? [String: Any])?["type"] as? String
        guard preTokenizerType == "BertPreTokenizer" else {
            throw DataError(path: path, message: "pre_tokenizer.type is \(preTokenizerType.map { "\"\($0)\"" } ?? "missing"); only \"BertPreTokenizer\" is supported")
        }
        if let post = root["post_processor"] as? [String: Any] {
            let type = post["type"] as? String
            guard type == "TemplateProcessing" || type == "BertProcessing" else {
                throw DataError(path: path, message: "post_processor.type is \(type.map { "\"\($0)\"" } ?? "missing"); only \"TemplateProcessing\" or \"BertProcessing\" ([CLS] text [SEP]) is supported")
            }
        }

        // Added tokens: matched in the raw text. HF can also match them after normalisation or
        // only as whole words; those options are not implemented, so they are refused.
        var added: [(content: String, id: Int32)] = []
        for (i, entry) in ((root["added_tokens"] as? [[String: Any]]) ?? []).enumerated() {
            guard let content = entry["content"] as? String, let id = entry["id"] as? Int else {
                throw DataError(path: path, message: "added_tokens[\(i)] needs \"content\" and \"id\"")
            }
            for option in ["normalized", "lstrip", "rstrip", "single_word"] where (entry[option] as? Bool) == true {
                throw DataError(path: path, message: "added_tokens[\(i)] (\"\(content)\") has \(option): true, which is not supported")
            }
            guard id >= 0, id < vocabulary.count, vocabulary[id] == content else {
                throw DataError(path: path, message: "added_tokens[\(i)] (\"\(content)\") has id \(id), which is not that token in model.vocab")
            }
            added.append((content: content, id: Int32(id)))
        }
        return try WordPieceTokenizer(vocabulary: vocabulary.map { $0! }, lowercase: lowercase, stripAccents: stripAccents,
                                      handleChineseChars: handleChineseChars, cleanText: cleanText, unknownToken: unknownToken,
                                      continuingPrefix: continuingPrefix, maxInputCharsPerWord: maxChars, source: path,
                                      addedTokens: added)
    }

    /// vocab.txt (one token per line, "\n" or "\r\n"; trailing whitespace trimmed, as HF's reader
    /// does), with tokenizer_config.json beside it when present (transformers' BertTokenizer
    /// settings).
    public static func load(vocabTXT path: String) throws -> WordPieceTokenizer {
        let text = try InputLimit.tokenizer.readText(path)
        // Lines split on the scalar U+000A: splitting the String on the Character "\n" would miss
        // "\r\n", which is one Character.
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        let vocabulary = lines.map { line -> String in
            var end = line.endIndex
            while end > line.startIndex {
                let before = line.index(before: end)
                guard UnicodeClass.isWhitespace(line[before].value) else { break }
                end = before
            }
            return String(line[..<end])
        }

        var lowercase = true, handleChineseChars = true, unknownToken = "[UNK]"
        var stripAccents: Bool? = nil
        let configPath = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: configPath) {
            let config = try readJSONObject(configPath)
            lowercase = try field(config, "do_lower_case", in: configPath, default: true)
            handleChineseChars = try field(config, "tokenize_chinese_chars", in: configPath, default: true)
            unknownToken = try field(config, "unk_token", in: configPath, default: "[UNK]")
            switch config["strip_accents"] {
            case nil, is NSNull: stripAccents = nil
            case let value as Bool: stripAccents = value
            default: throw DataError(path: configPath, message: "strip_accents must be true, false or null")
            }
        }
        return try WordPieceTokenizer(vocabulary: vocabulary, lowercase: lowercase, stripAccents: stripAccents,
                                      handleChineseChars: handleChineseChars, cleanText: true, unknownToken: unknownToken,
                                      source: path)
    }

    static func readJSONObject(_ path: String) throws -> [String: Any] {
        let data = try InputLimit.tokenizer.read(path)
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
            throw DataError(path: path, message: "not valid JSON (\(error.localizedDescription))")
        }
        guard let object = parsed as? [String: Any] else { throw DataError(path: path, message: "not a JSON object at the top level") }
        return object
    }

    /// `object[key]` as a T, `fallback` when absent or null; any other type is an error naming the field.
    static func field<T>(_ object: [String: Any], _ key: String, in path: String, prefix: String = "", default fallback: T) throws -> T {
        switch object[key] {
        case nil, is NSNull: return fallback
        case let value as T: return value
        case let value?: throw DataError(path: path, message: "\(prefix)\(key) is \(value), not a \(T.self)")
        }
    }

    // MARK: Encoding

    /// Word pieces of `text`, without [CLS] and [SEP] (special tokens written in the text are kept).
    public func tokens(_ text: String) -> [String] {
        var ids: [Int32] = []
        appendPieceIDs(of: text, to: &ids, limit: Int.max)
        return ids.map { vocabulary[Int($0)] }
    }

    /// [CLS] pieces [SEP], with the pieces cut so the whole is at most `maxLength` ids (HF's
    /// truncation of a single sequence: the special tokens are kept). `Int.max`: no truncation.
    public func encode(_ text: String, maxLength: Int = 128) -> [Int32] {
        precondition(maxLength >= 2, "maxLength \(maxLength) leaves no room for [CLS] and [SEP]")
        var ids: [Int32] = [clsID]
        appendPieceIDs(of: text, to: &ids, limit: maxLength == Int.max ? Int.max : maxLength - 2)
        ids.append(sepID)
        return ids
    }

    /// `encode` of each text, in parallel over `Compute` workers; results in input order.
    public func encode(_ texts: [String], maxLength: Int = 128) -> [[Int32]] {
        var results = [[Int32]](repeating: [], count: texts.count)
        results.withUnsafeMutableBufferPointer { out in
            let out = Compute.UncheckedBox(out)
            Compute.parallelFor(texts.count) { i in out.value[i] = self.encode(texts[i], maxLength: maxLength) }
        }
        return results
    }

    /// Appends the piece ids of `text` to `ids`, at most `limit` of them (it stops early, so a long
    /// text costs only what is kept).
    func appendPieceIDs(of text: String, to ids: inout [Int32], limit: Int) {
        if limit <= 0 { return }
        let (sum, overflow) = ids.count.addingReportingOverflow(limit)
        let stop = overflow ? Int.max : sum
        let raw = Self.scalars(of: text)
        var scratch = Scratch()

        // Special tokens first, on the raw text: leftmost match, the longest one there.
        var segmentStart = 0, i = 0
        let firstScalars = addedTokenFirstScalars
        while i < raw.count {
            var maybeToken = false
            for first in firstScalars where first == raw[i] { maybeToken = true }
            if !maybeToken { i += 1; continue }
            var matchLength = 0, matchID: Int32 = -1
            for token in addedTokens where token.scalars.count > matchLength && token.scalars[0] == raw[i] && i + token.scalars.count <= raw.count {
                if raw[i..<(i + token.scalars.count)].elementsEqual(token.scalars) { matchLength = token.scalars.count; matchID = token.id }
            }
            if matchLength == 0 { i += 1; continue }
            appendSegmentPieceIDs(raw[segmentStart..<i], to: &ids, stop: stop, scratch: &scratch)
            if ids.count >= stop { return }
            ids.append(matchID)
            if ids.count >= stop { return }
            i += matchLength
            segmentStart = i
        }
        appendSegmentPieceIDs(raw[segmentStart..<raw.count], to: &ids, stop: stop, scratch: &scratch)
    }

    /// The Unicode scalars of `text`, decoded from its UTF-8 by hand (a String's UTF-8 is always
    /// valid): in a profile of the whole benchmark this took 3% of the time, iterating
    /// `unicodeScalars` 12%.
    static func scalars(of text: String) -> [UInt32] {
        var text = text
        return text.withUTF8 { bytes in
            [UInt32](unsafeUninitializedCapacity: bytes.count) { out, count in
                var i = 0, n = 0
                while i < bytes.count {
                    let b0 = UInt32(bytes[i])
                    if b0 < 0x80 {
                        out[n] = b0; i += 1
                    } else if b0 < 0xE0 {
                        out[n] = (b0 & 0x1F) << 6 | UInt32(bytes[i + 1] & 0x3F); i += 2
                    } else if b0 < 0xF0 {
                        out[n] = (b0 & 0x0F) << 12 | UInt32(bytes[i + 1] & 0x3F) << 6 | UInt32(bytes[i + 2] & 0x3F); i += 3
                    } else {
                        out[n] = (b0 & 0x07) << 18 | UInt32(bytes[i + 1] & 0x3F) << 12 | UInt32(bytes[i + 2] & 0x3F) << 6
                            | UInt32(bytes[i + 3] & 0x3F)
                        i += 4
                    }
                    n += 1
                }
                count = n
            }
        }
    }

    /// Buffers reused across the segments of one text.
    struct Scratch {
        var normalized: [UInt32] = []
        /// The current word as UTF-8 (at most 4 bytes per scalar of the segment).
        var wordBytes: [UInt8] = []
        /// wordBytes offset where each scalar of the word starts, then one past its end.
        var scalarOffsets: [Int] = []
    }

    /// Normalises one stretch of text without special tokens, splits it into words and appends the
    /// words' piece ids until `ids.count` reaches `stop`. Long stretches go in chunks that end
    /// before a space, so a truncated encoding stops early; that gives the same ids, because a
    /// space ends a word and NFD never reorders across it (it is a starter).
    func appendSegmentPieceIDs(_ segment: ArraySlice<UInt32>, to ids: inout [Int32], stop: Int, scratch: inout Scratch) {
        let chunkScalars = 1024
        var lo = segment.startIndex
        while lo < segment.endIndex && ids.count < stop {
            var hi = min(lo + chunkScalars, segment.endIndex)
            while hi < segment.endIndex && segment[hi] != 0x20 { hi += 1 }
            appendChunkPieceIDs(segment[lo..<hi], to: &ids, stop: stop, scratch: &scratch)
            lo = hi
        }
    }

    /// `appendSegmentPieceIDs` for one chunk.
    func appendChunkPieceIDs(_ segment: ArraySlice<UInt32>, to ids: inout [Int32], stop: Int, scratch: inout Scratch) {
        if segment.isEmpty { return }
        normalize(segment, into: &scratch.normalized)
        let n = scratch.normalized.count
        if scratch.wordBytes.count < 4 * n {
            scratch.wordBytes = [UInt8](repeating: 0, count: 4 * n)
            scratch.scalarOffsets = [Int](repeating: 0, count: n + 1)
        }
        scratch.normalized.withUnsafeBufferPointer { chars in
            scratch.wordBytes.withUnsafeMutableBufferPointer { bytes in
                scratch.scalarOffsets.withUnsafeMutableBufferPointer { offsets in
                    // BertPreTokenizer: whitespace ends a word and is dropped; punctuation ends a
                    // word and is a word of its own. The word is built as UTF-8 as it goes.
                    var wordLength = 0
                    func add(_ c: UInt32) {
                        var at = offsets[wordLength]
                        if c < 0x80 {
                            bytes[at] = UInt8(c); at += 1
                        } else {
                            UTF8.encode(Unicode.Scalar(c)!) { bytes[at] = $0; at += 1 }
                        }
                        wordLength += 1
                        offsets[wordLength] = at
                    }
                    func endWord() {
                        if wordLength == 0 { return }
                        appendWordPieceIDs(bytes: UnsafePointer(bytes.baseAddress!), offsets: UnsafePointer(offsets.baseAddress!),
                                           wordLength: wordLength, to: &ids, stop: stop)
                        wordLength = 0
                    }
                    offsets[0] = 0
                    for c in chars {
                        if UnicodeClass.isWhitespace(c) {
                            endWord()
                            if ids.count >= stop { return }
                        } else if UnicodeClass.isPunctuation(c) {
                            endWord()
                            add(c)
                            endWord()
                            if ids.count >= stop { return }
                        } else {
                            add(c)
                        }
                    }
                    endWord()
                }
            }
        }
    }

    /// BertNormalizer over one segment: clean text, CJK spacing, strip accents, lowercase, each over
    /// the whole segment in that order. A segment of ASCII only is done in one pass (nothing there
    /// to decompose or strip, so lowercasing first is the same); one with any other scalar gets
    /// every step, since NFD can make ASCII capitals ("Å" is "A" + U+030A).
    func normalize(_ segment: ArraySlice<UInt32>, into out: inout [UInt32]) {
        var hasDecomposable = false, hasNonASCII = false
        let cleanText = cleanText, handleChineseChars = handleChineseChars, lowercase = lowercase
        // At most three scalars out per scalar in (a CJK ideograph and two spaces).
        out = [UInt32](unsafeUninitializedCapacity: 3 * segment.count) { buffer, count in
            var n = 0
            for var c in segment {
                if c < 0x80 {
                    if cleanText && UnicodeClass.isControl(c) { continue }
                    if c >= 0x41 && c <= 0x5A {
                        if lowercase { c += 0x20 }
                    } else if cleanText && UnicodeClass.isWhitespace(c) {
                        c = 0x20
                    }
                    buffer[n] = c; n += 1
                    continue
                }
                if cleanText {
                    // Dropped before whitespace is mapped: U+0085 is whitespace but also a control
                    // character (Cc), so it vanishes, not becomes a space (U+000B and U+000C
                    // likewise, above).
                    if c == 0xFFFD || UnicodeClass.isControl(c) { continue }
                    if UnicodeClass.isWhitespace(c) { buffer[n] = 0x20; n += 1; continue }
                }
                hasNonASCII = true
                // U+00C0 is the first scalar with a canonical decomposition (CJK compatibility
                // ideographs have one too).
                if c >= 0xC0 { hasDecomposable = true }
                if handleChineseChars && UnicodeClass.isCJKIdeograph(c) {
                    buffer[n] = 0x20; buffer[n + 1] = c; buffer[n + 2] = 0x20; n += 3
                } else {
                    buffer[n] = c; n += 1
                }
            }
            count = n
        }
        if !hasNonASCII { return }
        if stripAccents {
            if hasDecomposable { UnicodeClass.decomposeCanonically(&out) }
            out.removeAll { UnicodeClass.isNonspacingMark($0) }
        }
        if lowercase { UnicodeClass.lowercase(&out) }
    }

    /// WordPiece on one word (scalar k is bytes[offsets[k] ..< offsets[k + 1]]): greedy longest
    /// match first, the unknown token for the whole word when it is too long or some part of it
    /// matches nothing. Pieces past `stop` are not appended.
    func appendWordPieceIDs(bytes: UnsafePointer<UInt8>, offsets: UnsafePointer<Int>, wordLength: Int,
                            to ids: inout [Int32], stop: Int) {
        if wordLength > maxInputCharsPerWord {
            ids.append(unknownID)
            return
        }
        let firstNew = ids.count
        var start = 0
        while start < wordLength {
            let table = start == 0 ? wordStartPieces : continuationPieces
            // No key is longer than table.longestKey bytes: start the search at the longest
            // candidate that could exist (same result as starting at the end of the word).
            var end = wordLength
            while end > start && offsets[end] - offsets[start] > table.longestKey { end -= 1 }
            var id: Int32 = -1
            while end > start {
                id = table.lookup(bytes + offsets[start], count: offsets[end] - offsets[start])
                if id >= 0 { break }
                end -= 1
            }
            if id < 0 {
                ids.removeSubrange(firstNew...)
                ids.append(unknownID)
                return
            }
            ids.append(id)
            start = end
        }
        if ids.count > stop { ids.removeSubrange(stop...) }
    }
}

// MARK: - The vocabulary as a hash table over UTF-8 bytes

/// Open addressing with linear probing; keys are stored back to back in one byte buffer. A lookup
/// hashes the candidate's bytes in place: no String is built per candidate piece. Filled once by
/// `init`, read-only afterwards (so shared by encoding threads).
final class PieceTable {
    let keyBytes: UnsafeMutablePointer<UInt8>
    /// Key k is keyBytes[keyStart[k] ..< keyStart[k + 1]].
    let keyStart: UnsafeMutablePointer<Int>
    let ids: UnsafeMutablePointer<Int32>
    /// Index of the key in each slot, or -1.
    let slots: UnsafeMutablePointer<Int32>
    let slotMask: Int
    private(set) var keyCount = 0
    /// Bytes in the longest key.
    private(set) var longestKey = 0

    /// A table for these keys (UTF-8) and ids; a key given twice keeps its later id.
    init(keys: [[UInt8]], ids keyIDs: [Int32]) {
        // At most half full, so probes stay short.
        var capacity = 16
        while capacity < 2 * keys.count { capacity *= 2 }
        slotMask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: -1, count: capacity)
        let totalBytes = keys.reduce(0) { $0 + $1.count }
        keyBytes = .allocate(capacity: max(totalBytes, 1))
        keyStart = .allocate(capacity: keys.count + 1)
        ids = .allocate(capacity: max(keys.count, 1))
        keyStart[0] = 0
        for (key, id) in zip(keys, keyIDs) {
            let slot = key.withUnsafeBufferPointer { findSlot($0.baseAddress ?? UnsafePointer(keyBytes), count: key.count) }
            if slots[slot] >= 0 { ids[Int(slots[slot])] = id; continue }
            let at = keyStart[keyCount]
            for (j, b) in key.enumerated() { keyBytes[at + j] = b }
            keyStart[keyCount + 1] = at + key.count
            ids[keyCount] = id
            slots[slot] = Int32(keyCount)
            keyCount += 1
            longestKey = max(longestKey, key.count)
        }
    }

    deinit {
        keyBytes.deallocate(); keyStart.deallocate(); ids.deallocate(); slots.deallocate()
    }

    @inline(__always) static func hash(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int {
        // FNV-1a, 64-bit, folded so the low bits (the slot) depend on every byte.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 0..<count { h = (h ^ UInt64(p[i])) &* 0x100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// The slot holding this key, or the empty slot where it would go.
    @inline(__always) func findSlot(_ p: UnsafePointer<UInt8>, count: Int) -> Int {
        var slot = Self.hash(p, count) & slotMask
        while true {
            let k = Int(slots[slot])
            if k < 0 { return slot }
            let start = keyStart[k]
            if keyStart[k + 1] - start == count {
                var same = true
                for i in 0..<count where keyBytes[start + i] != p[i] { same = false; break }
                if same { return slot }
            }
            slot = (slot + 1) & slotMask
        }
    }

    /// The id of this key, or -1.
    @inline(__always) func lookup(_ p: UnsafePointer<UInt8>, count: Int) -> Int32 {
        let k = slots[findSlot(p, count: count)]
        return k < 0 ? -1 : ids[Int(k)]
    }
}

// MARK: - Character classes, as HF tokenizers has them

enum UnicodeClass {
    /// White_Space, as Rust's `char::is_whitespace` (HF's whitespace test, before and after
    /// normalisation).
    @inline(__always) static func isWhitespace(_ c: UInt32) -> Bool {
        if c < 0x80 { return c == 0x20 || (c >= 0x09 && c <= 0x0D) }
        switch c {
        case 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// Whether Unicode 8.0 (the version of HF's category tables) had this scalar.
    @inline(__always) static func inUnicode8(_ p: Unicode.Scalar.Properties) -> Bool {
        guard let age = p.age else { return false }
        return age.major < 8 || (age.major == 8 && age.minor == 0)
    }

    /// What clean_text drops: categories Cc, Cf and Co (HF's `is_other`), except tab, newline and
    /// carriage return, which count as whitespace.
    @inline(__always) static func isControl(_ c: UInt32) -> Bool {
        if c < 0x80 { return c != 0x09 && c != 0x0A && c != 0x0D && (c < 0x20 || c == 0x7F) }
        if c < 0xA0 { return true }  // U+0080-009F: Cc
        let p = Unicode.Scalar(c)!.properties
        switch p.generalCategory {
        case .control, .format, .privateUse: return inUnicode8(p)
        default: return false
        }
    }

    /// Punctuation for BertPreTokenizer: the ASCII punctuation ranges, and categories Pc, Pd, Ps,
    /// Pe, Pi, Pf, Po as Unicode 8.0 had them.
    @inline(__always) static func isPunctuation(_ c: UInt32) -> Bool {
        if c < 0x80 {
            return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E)
        }
        // Unicode 8.0 categories that changed since: U+166D CANADIAN SYLLABICS CHI SIGN was Po
        // (So from 12.0); U+111C9 SHARADA SANDHI MARK was Po (Mn from 11.0).
        if c == 0x166D || c == 0x111C9 { return true }
        let p = Unicode.Scalar(c)!.properties
        switch p.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return inUnicode8(p)
        default: return false
        }
    }

    /// Nonspacing marks (Mn) as Unicode 8.0 had them: what strip_accents drops after NFD.
    @inline(__always) static func isNonspacingMark(_ c: UInt32) -> Bool {
        if c < 0x300 { return false }
        switch c {
        // Mn in Unicode 8.0, Mc now: HANUNOO SIGN PAMUDPOD (Mc from 14.0), AHOM CONSONANT SIGN
        // MEDIAL RA (Mc from 14.0).
        case 0x1734, 0x1171E: return true
        // Not Mn in Unicode 8.0, Mn now: MONGOLIAN LETTER ALI GALI BALUDA and THREE BALUDA (Lo
        // until 9.0), JAVANESE CONSONANT SIGN KERET (Mc until 12.0), SHARADA SANDHI MARK (Po
        // until 11.0, see isPunctuation).
        case 0x1885, 0x1886, 0xA9BD, 0x111C9: return false
        default:
            let p = Unicode.Scalar(c)!.properties
            return p.generalCategory == .nonspacingMark && inUnicode8(p)
        }
    }

    /// HF's "Chinese character": the CJK Unified Ideographs blocks and their extensions A-E, and
    /// the compatibility ideographs (not Hiragana, Katakana or Hangul, which are space-separated
    /// scripts). The ranges are HF's, gap at U+2B820-2B91F included.
    @inline(__always) static func isCJKIdeograph(_ c: UInt32) -> Bool {
        switch c {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }

    /// Whether HF's normalisation tables (the `unicode-normalization-alignments` crate) know this
    /// scalar: they predate Unicode 13.0, whose U+11938 DIVES AKURU VOWEL SIGN O they leave whole.
    /// No scalar of Unicode 8.1-12.1 has a canonical decomposition or is a spacing nonstarter, so
    /// 12.1 as the boundary is exact for every scalar that can matter here.
    @inline(__always) static func inNormalizationTables(_ c: UInt32) -> Bool {
        if c < 0x80 { return true }
        guard let age = Unicode.Scalar(c)!.properties.age else { return false }
        return age.major < 12 || (age.major == 12 && age.minor <= 1)
    }

    /// NFD (canonical decomposition and ordering) in place, through Foundation. Scalars newer than
    /// HF's tables stay as they are and, like any scalar without a combining class there, end a
    /// run of marks: so each stretch between them is decomposed on its own.
    static func decomposeCanonically(_ scalars: inout [UInt32]) {
        var out: [UInt32] = []
        out.reserveCapacity(scalars.count + 16)
        var run = String.UnicodeScalarView()
        func flushRun() {
            if run.isEmpty { return }
            for s in String(run).decomposedStringWithCanonicalMapping.unicodeScalars { out.append(s.value) }
            run = String.UnicodeScalarView()
        }
        for c in scalars {
            if inNormalizationTables(c) {
                run.append(Unicode.Scalar(c)!)
            } else {
                flushRun()
                out.append(c)
            }
        }
        flushRun()
        scalars = out
    }

    /// Full lowercase mapping of each scalar on its own (Rust's `char::to_lowercase`: "İ" becomes
    /// "i" + U+0307, final sigma is not special).
    static func lowercase(_ scalars: inout [UInt32]) {
        var out: [UInt32] = []
        out.reserveCapacity(scalars.count + 8)
        for c in scalars {
            if c < 0x80 { out.append(c >= 0x41 && c <= 0x5A ? c + 0x20 : c); continue }
            let p = Unicode.Scalar(c)!.properties
            if !p.changesWhenLowercased { out.append(c); continue }
            for s in p.lowercaseMapping.unicodeScalars { out.append(s.value) }
        }
        scalars = out
    }
}
