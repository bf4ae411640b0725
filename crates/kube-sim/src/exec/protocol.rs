//! The Kubernetes remote-command channel protocol as carried over WebSocket.
//!
//! Every WebSocket message is binary; its first byte names a channel (0 stdin, 1 stdout, 2 stderr,
//! 3 error/status, 4 resize) and the rest is payload. `v5.channel.k8s.io` adds a close signal
//! (`[255, channel]`) so a client can half-close stdin without tearing down the connection; kubectl
//! 1.30+ speaks only v5 over WebSocket, kube-rs offers v5 then v4.

use axum::http::HeaderMap;
use axum::http::header::SEC_WEBSOCKET_PROTOCOL;

/// Channel carrying the process's standard input (client → server).
pub const STDIN: u8 = 0;
/// Channel carrying the process's standard output (server → client).
pub const STDOUT: u8 = 1;
/// Channel carrying the process's standard error (server → client).
pub const STDERR: u8 = 2;
/// Channel carrying the final `metav1.Status` (server → client).
pub const ERROR: u8 = 3;
/// Channel carrying terminal size changes as JSON `{"Width":..,"Height":..}` (client → server).
pub const RESIZE: u8 = 4;
/// v5 only: `[CLOSE, channel]` half-closes `channel`.
pub const CLOSE: u8 = 255;

/// A negotiated streaming subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `v4.channel.k8s.io`: binary channels, JSON Status on the error channel, no close signal.
    V4,
    /// `v5.channel.k8s.io`: v4 plus the stream close signal.
    V5,
}

impl Protocol {
    /// Protocols in the server's order of preference.
    pub const SUPPORTED: [Protocol; 2] = [Protocol::V5, Protocol::V4];

    /// The subprotocol name as it appears in `Sec-WebSocket-Protocol`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }

    /// Whether the client can half-close a channel with `[CLOSE, channel]`.
    #[must_use]
    pub const fn supports_close(self) -> bool {
        matches!(self, Protocol::V5)
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|p| p.name() == name)
    }
}

/// Pick the best protocol the client offers, from one or several `Sec-WebSocket-Protocol` headers
/// (each may hold a comma-separated list, as kube-rs sends it). `None` when nothing matches.
#[must_use]
pub fn negotiate(headers: &HeaderMap) -> Option<Protocol> {
    let offered: Vec<Protocol> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| Protocol::from_name(name.trim()))
        .collect();
    Protocol::SUPPORTED
        .into_iter()
        .find(|protocol| offered.contains(protocol))
}

/// One decoded client → server message.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// Bytes for the process's stdin (possibly empty).
    Stdin(&'a [u8]),
    /// A JSON terminal size.
    Resize(&'a [u8]),
    /// v5 close signal for the given channel.
    Close(u8),
    /// A message on a channel the client must not write to, or an empty message.
    Ignored,
}

/// Decode a binary client message. `protocol` decides whether 255 is a close signal.
#[must_use]
pub fn parse_client_frame(protocol: Protocol, data: &[u8]) -> ClientFrame<'_> {
    match data.split_first() {
        Some((&STDIN, rest)) => ClientFrame::Stdin(rest),
        Some((&RESIZE, rest)) => ClientFrame::Resize(rest),
        Some((&CLOSE, rest)) if protocol.supports_close() => match rest.first() {
            Some(&channel) => ClientFrame::Close(channel),
            None => ClientFrame::Ignored,
        },
        _ => ClientFrame::Ignored,
    }
}

/// Prefix `payload` with its channel byte.
#[must_use]
pub fn server_frame(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(value).expect("test header is ASCII"),
            );
        }
        map
    }

    #[test]
    fn negotiation_prefers_v5_from_a_comma_separated_offer() {
        let offer = headers(&["v4.channel.k8s.io, v5.channel.k8s.io"]);
        assert_eq!(negotiate(&offer), Some(Protocol::V5));
    }

    #[test]
    fn negotiation_accepts_v4_alone_and_across_repeated_headers() {
        assert_eq!(
            negotiate(&headers(&["v4.channel.k8s.io"])),
            Some(Protocol::V4)
        );
        assert_eq!(
            negotiate(&headers(&["base64.channel.k8s.io", "v4.channel.k8s.io"])),
            Some(Protocol::V4)
        );
    }

    #[test]
    fn negotiation_refuses_unsupported_or_missing_protocols() {
        assert_eq!(negotiate(&headers(&["channel.k8s.io"])), None);
        assert_eq!(negotiate(&HeaderMap::new()), None);
    }

    #[test]
    fn close_signal_is_only_understood_in_v5() {
        assert_eq!(
            parse_client_frame(Protocol::V5, &[CLOSE, STDIN]),
            ClientFrame::Close(STDIN)
        );
        assert_eq!(
            parse_client_frame(Protocol::V4, &[CLOSE, STDIN]),
            ClientFrame::Ignored
        );
    }

    #[test]
    fn client_frames_split_channel_and_payload() {
        assert_eq!(
            parse_client_frame(Protocol::V4, b"\x00abc"),
            ClientFrame::Stdin(b"abc")
        );
        assert_eq!(
            parse_client_frame(Protocol::V5, b"\x04{}"),
            ClientFrame::Resize(b"{}")
        );
        assert_eq!(
            parse_client_frame(Protocol::V5, b"\x01x"),
            ClientFrame::Ignored
        );
        assert_eq!(parse_client_frame(Protocol::V5, b""), ClientFrame::Ignored);
        assert_eq!(server_frame(STDERR, b"e"), b"\x02e".to_vec());
    }
}
