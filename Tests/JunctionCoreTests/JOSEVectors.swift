/// Test vectors from the JOSE RFCs, in one place so each test uses them exactly as published.
enum JOSEVectors {
    /// RFC 7515 appendix A.3: the ES256 example key (P-256), base64url coordinates and private scalar.
    static let es256X = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
    static let es256Y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    static let es256D = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
    /// RFC 7515 A.3.1: the protected header and its encoding.
    static let es256Header = #"{"alg":"ES256"}"#
    static let es256EncodedHeader = "eyJhbGciOiJFUzI1NiJ9"
    /// RFC 7515 A.3.1: the payload, CRLF line breaks and leading spaces included.
    static let es256Payload = Array(
        "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}".utf8
    )
    static let es256EncodedPayload =
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    /// RFC 7515 A.3.1: the signature (r || s) the RFC computed; ECDSA is randomised, so it is
    /// checked by verifying it, not by reproducing it.
    static let es256Signature =
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

    /// RFC 7638 section 3.1: the RSA key whose thumbprint the RFC gives.
    static let rsaN =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
        + "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgd"
        + "AZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCu"
        + "r-kEgU8awapJzKnqDKgw"
    static let rsaE = "AQAB"
    static let rsaThumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
}
