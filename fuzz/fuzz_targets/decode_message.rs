//! Feeds arbitrary bytes to the message decoder under every session context. The decoder must
//! return (Ok or Err) without panicking, and whatever it accepts must re-encode and decode to
//! the same message.
#![no_main]

use bgp::wire::{frame, Message, SessionContext, Update};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else { return };
    let ctx = SessionContext { four_octet_as: sel & 1 != 0, extended_message: sel & 2 != 0, ebgp: sel & 4 != 0 };
    let mut buf = bytes;
    while let Ok(Some(f)) = frame(buf, &ctx) {
        if let Ok(u) = Update::parse(f.body, &ctx) {
            let _ = u.withdrawn().count() + u.nlri().count();
        }
        match Message::decode(buf, &ctx) {
            Ok((m, _)) => {
                let again = m.to_bytes(&ctx);
                let mut rest = &again[..];
                while !rest.is_empty() {
                    let (m2, n) = Message::decode(rest, &ctx).expect("re-encoded message decodes");
                    if n == again.len() {
                        assert_eq!(m2, m, "round trip changed the message");
                    }
                    rest = &rest[n..];
                }
            }
            Err(e) => {
                let _ = e.to_notification();
            }
        }
        buf = &buf[f.wire_len..];
    }
});
