/// Turns a journal failure into what an operator should do about it.
public enum JournalAdvice {
    public static func explain(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("not a database") || text.contains("malformed") || text.contains("not a vigil journal") {
            return "the file is not a readable vigil journal (damaged, or not vigil's): move it aside and vigil starts a new one"
        }
        return text
    }
}
