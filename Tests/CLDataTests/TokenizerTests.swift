import CLTestSupport
import Foundation
import XCTest
@testable import CLData

/// WordPieceTokenizer against Hugging Face `tokenizers` (fixture: tools/make_tokenizer_fixture.py,
/// all-MiniLM-L6-v2's tokenizer.json): hand-picked edge cases id for id, every Unicode scalar and
/// every cl-benchmark file by hash; plus loading and its errors.
final class TokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/tokenizer").path
    /// ../shared/data/cl-benchmark from the package root (Tests/CLDataTests/ is two levels down).
    static let benchmark = SharedData.data + "/cl-benchmark"
    /// Where scripts/fetch-minilm.sh puts the model: $CLBENCH_WEIGHTS, else $HOME/.cache/clbench/weights.
    static var modelFolder: String { SharedData.miniLM }

    /// The fixture folder has vocab.txt and no tokenizer.json, so this is the vocab.txt path
    /// with BERT-uncased defaults.
    static let tokenizer: WordPieceTokenizer = try! WordPieceTokenizer.load(folder: fixtures)

    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-tokenizer-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static func readJSON(_ path: String) throws -> Any {
        try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// The fixture's hash: per record its id count, then its ids, each a little-endian UInt32.
    static func idHash(_ lists: [[Int32]]) -> String {
        var hash = SHA256Stream()
        for ids in lists {
            var words = [UInt32(ids.count).littleEndian]
            for id in ids { words.append(UInt32(bitPattern: id).littleEndian) }
            words.withUnsafeBytes { hash.update($0) }
        }
        return hash.finalize()
    }

    func testHashMatchesTheFixtureDefinition() {
        // Two records, [101, 102] and [7]: bytes 02000000 65000000 66000000 01000000 07000000.
        var reference = SHA256Stream()
        let bytes: [UInt8] = [2, 0, 0, 0, 101, 0, 0, 0, 102, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0]
        bytes.withUnsafeBytes { reference.update($0) }
        XCTAssertEqual(Self.idHash([[101, 102], [7]]), reference.finalize())
    }

    // MARK: Parity with HF

    func testEdgeCasesEqualHF() throws {
        let fixture = try XCTUnwrap(Self.readJSON(Self.fixtures + "/edge_cases.json") as? [String: Any])
        let cases = try XCTUnwrap(fixture["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 40)
        let t = Self.tokenizer
        var texts: [String] = [], expected128: [[Int32]] = []
        var sawTruncation = false
        for c in cases {
            let name = try XCTUnwrap(c["name"] as? String)
            let text = try XCTUnwrap(c["text"] as? String)
            let ids128 = try XCTUnwrap(c["ids_128"] as? [Int]).map(Int32.init)
            let idsFull = try XCTUnwrap(c["ids_full"] as? [Int]).map(Int32.init)
            XCTAssertEqual(t.encode(text, maxLength: 128), ids128, "\(name), max length 128")
            XCTAssertEqual(t.encode(text, maxLength: Int.max), idsFull, "\(name), no truncation")
            // tokens() is the full encoding without [CLS] and [SEP], as strings.
            XCTAssertEqual(t.tokens(text), idsFull.dropFirst().dropLast().map { t.vocabulary[Int($0)] }, name)
            if idsFull.count > 128 { sawTruncation = true }
            texts.append(text); expected128.append(ids128)
        }
        XCTAssertTrue(sawTruncation, "the fixture should hold a text longer than 128 pieces")
        // The batch API gives the same as one text at a time.
        XCTAssertEqual(t.encode(texts, maxLength: 128), expected128)
    }

    /// A long text (over the 1,024-scalar chunks that `encode` normalises at a time) has the
    /// pieces of its parts: the edge cases joined by spaces, which end words.
    func testLongTextIsItsPartsJoined() throws {
        let fixture = try XCTUnwrap(Self.readJSON(Self.fixtures + "/edge_cases.json") as? [String: Any])
        let texts = try XCTUnwrap(fixture["cases"] as? [[String: Any]]).compactMap { $0["text"] as? String }
        let t = Self.tokenizer
        let joined = texts.joined(separator: " ")
        XCTAssertGreaterThan(joined.unicodeScalars.count, 3 * 1024)
        let pieces = texts.flatMap { t.encode($0, maxLength: Int.max).dropFirst().dropLast() }
        XCTAssertEqual(t.encode(joined, maxLength: Int.max), [t.clsID] + pieces + [t.sepID])
        XCTAssertEqual(t.encode(joined, maxLength: 300), [t.clsID] + pieces.prefix(298) + [t.sepID])
    }

    /// "a" + c + "b" for every Unicode scalar c: cleaning, CJK spacing, accent stripping,
    /// lowercasing and punctuation splitting of each scalar, as HF does them.
    func testEveryScalarEqualsHF() throws {
        let fixture = try XCTUnwrap(Self.readJSON(Self.fixtures + "/edge_cases.json") as? [String: Any])
        let every = try XCTUnwrap(fixture["every_scalar"] as? [String: Any])
        XCTAssertEqual(every["template"] as? String, "a{c}b")
        var texts: [String] = []
        texts.reserveCapacity(0x110000)
        for v in 0...0x10FFFF {
            guard let c = Unicode.Scalar(v) else { continue }
            var view = String.UnicodeScalarView()
            view.append("a"); view.append(c); view.append("b")
            texts.append(String(view))
        }
        XCTAssertEqual(texts.count, every["count"] as? Int)
        let ids = Self.tokenizer.encode(texts, maxLength: Int.max)
        XCTAssertEqual(Self.idHash(ids), every["sha256_full"] as? String, "ids of every scalar differ from HF's")
    }

    func testEveryCLBenchmarkFileEqualsHF() throws {
        try SharedData.require([Self.benchmark], "the HF comparison of every benchmark text needs the shared cl-benchmark data")
        let fixture = try XCTUnwrap(Self.readJSON(Self.fixtures + "/cl_benchmark_hashes.json") as? [String: Any])
        let files = try XCTUnwrap(fixture["files"] as? [[String: Any]])
        // The fixture covers exactly the folder's train and test files.
        let onDisk = try FileManager.default.subpathsOfDirectory(atPath: Self.benchmark)
            .filter { $0.hasSuffix("/train.json") || $0.hasSuffix("/test.json") }.sorted()
        XCTAssertEqual(files.compactMap { $0["path"] as? String }.sorted(), onDisk)
        for file in files {
            let path = try XCTUnwrap(file["path"] as? String)
            let records = try XCTUnwrap(Self.readJSON(Self.benchmark + "/" + path) as? [[String: Any]], path)
            let sentences = try records.map { try XCTUnwrap($0["sentence"] as? String, path) }
            XCTAssertEqual(sentences.count, file["records"] as? Int, path)
            XCTAssertEqual(Self.idHash(Self.tokenizer.encode(sentences, maxLength: 128)), file["sha256_128"] as? String, "\(path), max length 128")
            XCTAssertEqual(Self.idHash(Self.tokenizer.encode(sentences, maxLength: Int.max)), file["sha256_full"] as? String, "\(path), no truncation")
        }
    }

    // MARK: Loading

    func testTokenizerJSONGivesTheSameIDsAsVocabTXT() throws {
        let json = Self.modelFolder + "/tokenizer.json"
        try SharedData.require([json], "tokenizer.json against vocab.txt needs all-MiniLM-L6-v2 (scripts/fetch-minilm.sh downloads it)")
        let fromJSON = try WordPieceTokenizer.load(folder: Self.modelFolder)
        XCTAssertEqual(fromJSON.source, json)
        let fromModelVocab = try WordPieceTokenizer.load(vocabTXT: Self.modelFolder + "/vocab.txt")  // + tokenizer_config.json
        let fromFixture = Self.tokenizer
        XCTAssertEqual(fromJSON.vocabularySize, 30522)
        XCTAssertEqual(fromJSON.vocabulary, fromFixture.vocabulary)
        XCTAssertEqual(fromJSON.fingerprint, fromFixture.fingerprint)
        XCTAssertEqual(fromModelVocab.fingerprint, fromFixture.fingerprint)
        XCTAssertEqual([fromJSON.clsID, fromJSON.sepID, fromJSON.padID, fromJSON.unknownID], [101, 102, 0, 100])

        let fixture = try XCTUnwrap(Self.readJSON(Self.fixtures + "/edge_cases.json") as? [String: Any])
        let texts = try XCTUnwrap(fixture["cases"] as? [[String: Any]]).compactMap { $0["text"] as? String }
        for text in texts {
            let expected = fromFixture.encode(text, maxLength: Int.max)
            XCTAssertEqual(fromJSON.encode(text, maxLength: Int.max), expected, text)
            XCTAssertEqual(fromModelVocab.encode(text, maxLength: Int.max), expected, text)
        }
    }

    func testSpecialIDsAndSmallExamples() {
        let t = Self.tokenizer
        XCTAssertEqual([t.clsID, t.sepID, t.padID, t.unknownID], [101, 102, 0, 100])
        XCTAssertEqual(t.vocabularySize, 30522)
        XCTAssertEqual(t.tokens("Hello, WORLD! Café"), ["hello", ",", "world", "!", "cafe"])
        XCTAssertEqual(t.encode("", maxLength: 128), [101, 102])
        XCTAssertEqual(t.encode("hello world", maxLength: 3), [101, t.encode("hello", maxLength: 3)[1], 102])
        XCTAssertEqual(t.encode("hello world", maxLength: 2), [101, 102])
    }

    /// WordPiece's rules on a vocabulary small enough to see every step.
    func testGreedyLongestMatchAndUnknownWords() throws {
        let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "una", "##aff", "##able", "##a", "a", "##ff", "x"]
        let t = try WordPieceTokenizer(vocabulary: vocabulary, maxInputCharsPerWord: 5)
        XCTAssertEqual(t.tokens("unaff"), ["una", "##ff"], "longest first piece, then the longest continuation")
        XCTAssertEqual(t.tokens("unable"), ["[UNK]"], "no backtracking: \"una\" is taken, then \"ble\" matches nothing")
        XCTAssertEqual(t.tokens("aaaaa"), ["a", "##a", "##a", "##a", "##a"])
        XCTAssertEqual(t.tokens("aaaaaa"), ["[UNK]"], "6 characters is over maxInputCharsPerWord 5")
        XCTAssertEqual(t.tokens("unx x"), ["[UNK]", "x"], "a word with an unmatched part is one [UNK]")
        XCTAssertEqual(t.tokens("x,a"), ["x", "[UNK]", "a"], "punctuation is a word of its own")
        XCTAssertEqual(t.encode("a a a a", maxLength: 4), [2, 9, 9, 3])
        XCTAssertEqual(t.encode("a [SEP]a", maxLength: 10), [2, 9, 3, 9, 3], "special tokens in the text are kept whole")
    }

    func testFingerprintChangesWithVocabularyAndSettings() throws {
        let vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "##b"]
        let base = try WordPieceTokenizer(vocabulary: vocabulary)
        XCTAssertEqual(base.fingerprint, try WordPieceTokenizer(vocabulary: vocabulary).fingerprint)
        XCTAssertEqual(base.fingerprint.count, 64)
        XCTAssertNotEqual(base.fingerprint, try WordPieceTokenizer(vocabulary: vocabulary, lowercase: false).fingerprint)
        XCTAssertNotEqual(base.fingerprint, try WordPieceTokenizer(vocabulary: vocabulary, stripAccents: false).fingerprint)
        XCTAssertNotEqual(base.fingerprint, try WordPieceTokenizer(vocabulary: vocabulary, maxInputCharsPerWord: 50).fingerprint)
        XCTAssertNotEqual(base.fingerprint, try WordPieceTokenizer(vocabulary: vocabulary.dropLast() + ["##c"]).fingerprint)
        XCTAssertEqual(base.fingerprint, try WordPieceTokenizer(vocabulary: vocabulary, stripAccents: true).fingerprint,
                       "strip_accents nil follows lowercase (true)")
    }

    // MARK: Errors name the file and the field

    func write(_ name: String, _ text: String) -> String {
        let path = dir + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)), path)
        return path
    }

    func loadError(_ folder: String) -> DataError? {
        do { _ = try WordPieceTokenizer.load(folder: folder); return nil } catch let error as DataError { return error } catch {
            XCTFail("not a DataError: \(error)"); return nil
        }
    }

    /// A minimal valid tokenizer.json with `model` replaced.
    func tokenizerJSON(model: String) -> String {
        """
        {"normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
         "pre_tokenizer": {"type": "BertPreTokenizer"}, "model": \(model)}
        """
    }

    func testTokenizerJSONThatDoesNotParse() throws {
        let path = write("tokenizer.json", "{\"model\": {\"type\": \"WordPiece\",")
        let error = try XCTUnwrap(loadError(dir))
        XCTAssertEqual(error.path, path)
        XCTAssertTrue(error.message.contains("not valid JSON"), error.message)
    }

    func testModelTypeOtherThanWordPiece() throws {
        let path = write("tokenizer.json", tokenizerJSON(model: #"{"type": "BPE", "vocab": {"a": 0}, "merges": []}"#))
        let error = try XCTUnwrap(loadError(dir))
        XCTAssertEqual(error.path, path)
        XCTAssertTrue(error.message.contains("model.type") && error.message.contains("BPE"), error.message)
    }

    func testTokenizerJSONWithAnotherPreTokenizer() throws {
        let json = tokenizerJSON(model: #"{"type": "WordPiece", "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}}"#)
            .replacingOccurrences(of: "BertPreTokenizer", with: "Whitespace")
        let path = write("tokenizer.json", json)
        let error = try XCTUnwrap(loadError(dir))
        XCTAssertEqual(error.path, path)
        XCTAssertTrue(error.message.contains("pre_tokenizer.type"), error.message)
    }

    func testVocabTXTWithoutSpecialTokens() throws {
        let path = write("vocab.txt", "[PAD]\n[UNK]\nhello\n##s\n")
        let error = try XCTUnwrap(loadError(dir))
        XCTAssertEqual(error.path, path)
        XCTAssertTrue(error.message.contains("has no [CLS], [SEP]"), error.message)
        XCTAssertFalse(error.message.contains("has no [CLS], [SEP], [PAD]"), "[PAD] is there: \(error.message)")
    }

    func testTokenizerJSONWithoutUnknownAndPadding() throws {
        let path = write("tokenizer.json", tokenizerJSON(model: #"{"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[CLS]": 0, "[SEP]": 1, "a": 2}}"#))
        let error = try XCTUnwrap(loadError(dir))
        XCTAssertEqual(error.path, path)
        XCTAssertTrue(error.message.contains("has no [PAD], [UNK]"), error.message)
    }

    func testFolderWithNeitherFile() throws {
        _ = write("config.json", "{}")
        let error = try XCTUnwrap(loadError(dir))
        XCTAssertEqual(error.path, dir)
        XCTAssertTrue(error.message.contains("tokenizer.json") && error.message.contains("vocab.txt"), error.message)
    }

    func testTokenizerConfigThatDoesNotParse() throws {
        _ = write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
        let config = write("tokenizer_config.json", "do_lower_case: true")
        let error = try XCTUnwrap(loadError(dir))
        XCTAssertEqual(error.path, config)
    }

    func testVocabTXTWithCRLFAndTrailingSpaces() throws {
        _ = write("vocab.txt", "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello \t\r\n##s\r\n")
        let t = try WordPieceTokenizer.load(folder: dir)
        XCTAssertEqual(t.vocabulary, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "##s"])
        XCTAssertEqual(t.tokens("Hellos"), ["hello", "##s"])
    }

    func testVocabTXTWithTokenizerConfig() throws {
        _ = write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nCafé\ncafe\n")
        _ = write("tokenizer_config.json", #"{"do_lower_case": false, "strip_accents": null}"#)
        let t = try WordPieceTokenizer.load(folder: dir)
        XCTAssertFalse(t.lowercase)
        XCTAssertFalse(t.stripAccents, "strip_accents null follows do_lower_case")
        XCTAssertEqual(t.tokens("Café cafe CAFE"), ["Café", "cafe", "[UNK]"])
    }
}
