/// The JOSE types this library's API uses (SigningKey, VerificationKeySet, JSONObject, JWSAlgorithm,
/// WallClock, ErrorCode, …) come with it: a resource server writes one `import TesseraVerifier`.
@_exported import TesseraJOSE
