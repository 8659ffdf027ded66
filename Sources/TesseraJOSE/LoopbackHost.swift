/// Whether a URL's host names this machine's loopback interface: `localhost`, an IPv4 literal in
/// 127.0.0.0/8, or `::1` (with or without brackets), compared without regard to ASCII case. Plain http is
/// allowed only there (development set-ups): the verifier for JWKS URLs, the server for its issuer.
///
/// A name that merely begins with `127.` (`127.example.com`) is a DNS name anywhere on the network, not
/// loopback: only four decimal octets count.
package func isLoopbackHost(_ host: String) -> Bool {
    let host = host.lowercased()
    if host == "localhost" || host == "::1" || host == "[::1]" { return true }
    let octets = host.split(separator: ".", omittingEmptySubsequences: false)
    return octets.count == 4 && octets[0] == "127"
        && octets.allSatisfy { $0.count <= 3 && !$0.isEmpty && $0.allSatisfy(\.isASCII) && UInt8($0) != nil }
}
