//! The BFD control packet (RFC 5880 §4.1), without authentication:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Intervals are in microseconds. [`ControlPacket::decode`] applies the checks of §6.8.6 that
//! need no session: version 1, a length of at least 24 that the datagram holds, a non-zero
//! Detect Mult, no Multipoint bit, a non-zero My Discriminator, and a zero Your Discriminator
//! only in Down or AdminDown. Authentication is not supported: a packet with the A bit is
//! refused (a session without authentication must discard it).

use std::fmt;

/// The length of a control packet without authentication.
pub const LEN: usize = 24;

/// A session state (§4.1 "Sta").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the local system last left Up (§4.1 "Diag"). Values 9–31 are reserved and decode as
/// [`Diag::Other`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    Other(u8),
}

impl Diag {
    fn from_bits(b: u8) -> Diag {
        match b & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            n => Diag::Other(n),
        }
    }

    fn bits(&self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Other(n) => n & 0x1f,
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::None => f.write_str("no diagnostic"),
            Diag::ControlDetectionTimeExpired => f.write_str("control detection time expired"),
            Diag::EchoFunctionFailed => f.write_str("echo function failed"),
            Diag::NeighborSignaledSessionDown => f.write_str("neighbor signaled session down"),
            Diag::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diag::PathDown => f.write_str("path down"),
            Diag::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diag::AdministrativelyDown => f.write_str("administratively down"),
            Diag::ReverseConcatenatedPathDown => f.write_str("reverse concatenated path down"),
            Diag::Other(n) => write!(f, "diagnostic {n}"),
        }
    }
}

/// One control packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ControlPacket {
    pub diag: Diag,
    pub state: State,
    /// Poll: the sender asks for a Final (it changed its timing parameters).
    pub poll: bool,
    /// Final: the answer to a Poll.
    pub final_: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    /// Demand mode (not used by this implementation; carried as received).
    pub demand: bool,
    pub detect_mult: u8,
    pub my_disc: u32,
    pub your_disc: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
}

/// Why a datagram is not a control packet this implementation accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} octets: shorter than a control packet (24)")]
    Short(usize),
    #[error("version {0}: only version 1 exists")]
    Version(u8),
    #[error("length field {length} with {received} octets received")]
    Length { length: u8, received: usize },
    #[error("Detect Mult 0")]
    DetectMult,
    #[error("Multipoint bit set")]
    Multipoint,
    #[error("My Discriminator 0")]
    MyDiscriminator,
    #[error("Your Discriminator 0 in state {0}")]
    YourDiscriminator(State),
    #[error("authentication present: not configured")]
    Authentication,
}

impl ControlPacket {
    /// The packet's 24 octets.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (1 << 5) | self.diag.bits();
        b[1] = ((self.state as u8) << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.cpi) << 3)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_disc.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_disc.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        b
    }

    /// Decodes one datagram's payload; never panics, whatever the bytes.
    pub fn decode(b: &[u8]) -> Result<ControlPacket, DecodeError> {
        if b.len() < LEN {
            return Err(DecodeError::Short(b.len()));
        }
        let version = b[0] >> 5;
        if version != 1 {
            return Err(DecodeError::Version(version));
        }
        let length = b[3];
        if usize::from(length) < LEN || usize::from(length) > b.len() {
            return Err(DecodeError::Length {
                length,
                received: b.len(),
            });
        }
        let flags = b[1];
        if flags & 0x04 != 0 {
            return Err(DecodeError::Authentication);
        }
        if flags & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let p = ControlPacket {
            diag: Diag::from_bits(b[0]),
            state: State::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            cpi: flags & 0x08 != 0,
            demand: flags & 0x02 != 0,
            detect_mult: b[2],
            my_disc: word(4),
            your_disc: word(8),
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
        };
        if p.detect_mult == 0 {
            return Err(DecodeError::DetectMult);
        }
        if p.my_disc == 0 {
            return Err(DecodeError::MyDiscriminator);
        }
        if p.your_disc == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err(DecodeError::YourDiscriminator(p.state));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> ControlPacket {
        ControlPacket {
            diag: Diag::ControlDetectionTimeExpired,
            state: State::Up,
            poll: true,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_disc: 0x0102_0304,
            your_disc: 0x0a0b_0c0d,
            desired_min_tx_us: 100_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    }

    /// The octets worked out by hand from §4.1.
    #[test]
    fn encodes_the_rfc_layout() {
        let b = packet().encode();
        assert_eq!(
            b,
            [
                0x21, // version 1, diag 1
                0xe0, // state Up (3 << 6), P
                3, 24, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, // mult, length, discriminators
                0, 0x01, 0x86, 0xa0, // 100000 µs
                0, 0x04, 0x93, 0xe0, // 300000 µs
                0, 0, 0, 0,
            ]
        );
        assert_eq!(ControlPacket::decode(&b), Ok(packet()));
    }

    #[test]
    fn round_trips_every_state_diag_and_flag() {
        for state in [State::AdminDown, State::Down, State::Init, State::Up] {
            for d in 0..32u8 {
                for flags in 0..16u8 {
                    let p = ControlPacket {
                        diag: Diag::from_bits(d),
                        state,
                        poll: flags & 1 != 0,
                        final_: flags & 2 != 0,
                        cpi: flags & 4 != 0,
                        demand: flags & 8 != 0,
                        ..packet()
                    };
                    assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
                }
            }
        }
    }

    #[test]
    fn reception_checks_refuse_what_6_8_6_discards() {
        let good = packet().encode();
        let with = |i: usize, v: u8| {
            let mut b = good;
            b[i] = v;
            b
        };
        assert_eq!(
            ControlPacket::decode(&good[..23]),
            Err(DecodeError::Short(23))
        );
        assert_eq!(
            ControlPacket::decode(&with(0, 0x41)),
            Err(DecodeError::Version(2))
        );
        assert!(matches!(
            ControlPacket::decode(&with(3, 23)),
            Err(DecodeError::Length { .. })
        ));
        assert!(matches!(
            ControlPacket::decode(&with(3, 48)),
            Err(DecodeError::Length { .. })
        ));
        assert_eq!(
            ControlPacket::decode(&with(2, 0)),
            Err(DecodeError::DetectMult)
        );
        assert_eq!(
            ControlPacket::decode(&with(1, 0xc1)),
            Err(DecodeError::Multipoint)
        );
        assert_eq!(
            ControlPacket::decode(&with(1, 0xc4)),
            Err(DecodeError::Authentication)
        );
        let mut no_my = good;
        no_my[4..8].fill(0);
        assert_eq!(
            ControlPacket::decode(&no_my),
            Err(DecodeError::MyDiscriminator)
        );
        let mut no_your = good;
        no_your[8..12].fill(0);
        assert_eq!(
            ControlPacket::decode(&no_your),
            Err(DecodeError::YourDiscriminator(State::Up))
        );
        // In Down a zero Your Discriminator is how a session starts.
        no_your[1] = (State::Down as u8) << 6;
        assert!(ControlPacket::decode(&no_your).is_ok());
        // A longer datagram whose length field says 24 is fine (trailing octets ignored).
        let mut long = good.to_vec();
        long.extend_from_slice(&[0; 8]);
        assert_eq!(ControlPacket::decode(&long), Ok(packet()));
        // Nothing panics on any prefix of a packet.
        for n in 0..=LEN {
            let _ = ControlPacket::decode(&good[..n]);
        }
    }
}
