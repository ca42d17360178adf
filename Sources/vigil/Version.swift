/// The version `vigil --version` prints; raised with every release of the CLI, the
/// journal schema or the worker wire format.
let vigilVersion = "0.3.0"
