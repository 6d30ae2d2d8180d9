//! Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3).

use crate::sip::message::{MessageExt, Method, Request, Response};

/// Server transaction key. RFC 3261 clients are matched on the branch, the
/// sent-by and the method (ACK matches its INVITE); requests without the
/// magic cookie fall back to RFC 2543 matching on the dialog and CSeq
/// identifiers plus the top Via as received (§17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerKey {
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: Method,
    },
    Rfc2543 {
        call_id: String,
        from_tag: String,
        cseq: u32,
        method: Method,
        top_via: String,
    },
}

/// The method whose transaction a request belongs to: ACK belongs to the
/// INVITE it acknowledges.
fn tx_method(m: &Method) -> Method {
    match m {
        Method::Ack => Method::Invite,
        m => m.clone(),
    }
}

impl ServerKey {
    /// `None` if the request lacks what matching needs (validation has
    /// already refused such requests; this is belt and braces).
    pub fn for_request(req: &Request) -> Option<ServerKey> {
        Self::with_method(req, tx_method(&req.method))
    }

    /// The key of the INVITE transaction a CANCEL targets (§9.2): same
    /// branch and sent-by, method INVITE.
    pub fn invite_for_cancel(cancel: &Request) -> Option<ServerKey> {
        Self::with_method(cancel, Method::Invite)
    }

    fn with_method(req: &Request, method: Method) -> Option<ServerKey> {
        let via = req.top_via().ok()?;
        if via.has_rfc3261_branch() {
            return Some(ServerKey::Rfc3261 {
                branch: via.branch()?.to_string(),
                sent_by: via.sent_by().to_ascii_lowercase(),
                method,
            });
        }
        Some(ServerKey::Rfc2543 {
            call_id: req.call_id()?.to_string(),
            from_tag: req.addr_from().ok()?.tag().unwrap_or_default().to_string(),
            cseq: req.cseq().ok()?.seq,
            method,
            top_via: via.sent_by().to_ascii_lowercase(),
        })
    }
}

/// Client transaction key: our own branch plus the CSeq method (CANCEL
/// shares its INVITE's branch, §17.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub branch: String,
    pub method: Method,
}

impl ClientKey {
    pub fn for_request(req: &Request) -> Option<ClientKey> {
        Some(ClientKey {
            branch: req.top_branch()?,
            method: req.cseq().ok()?.method,
        })
    }

    pub fn for_response(resp: &Response) -> Option<ClientKey> {
        Some(ClientKey {
            branch: resp.top_branch()?,
            method: resp.cseq().ok()?.method,
        })
    }
}

/// Identifies "the same request" arriving over different paths
/// (§8.2.2.2): no To tag, same From tag, Call-ID and CSeq.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MergeKey {
    pub from_tag: String,
    pub call_id: String,
    pub cseq: u32,
    pub method: Method,
}

impl MergeKey {
    pub fn for_request(req: &Request) -> Option<MergeKey> {
        let to = req.addr_to().ok()?;
        if to.tag().is_some() {
            return None;
        }
        let cseq = req.cseq().ok()?;
        Some(MergeKey {
            from_tag: req.addr_from().ok()?.tag()?.to_string(),
            call_id: req.call_id()?.to_string(),
            cseq: cseq.seq,
            method: cseq.method,
        })
    }
}
