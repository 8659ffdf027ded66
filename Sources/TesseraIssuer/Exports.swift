/// The JOSE types this library's API uses (SigningKey, JWSAlgorithm, JSONObject, WallClock, ErrorCode, …)
/// come with it: an embedding application writes one `import TesseraIssuer`.
@_exported import TesseraJOSE
