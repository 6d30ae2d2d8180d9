//! G.711 µ-law (PCMU) and A-law (PCMA) companding, ITU-T G.711 §A/§B, the
//! segment-search formulation.

/// Encoded silence for each law (the code of a zero sample).
pub const ULAW_SILENCE: u8 = 0xFF;
pub const ALAW_SILENCE: u8 = 0xD5;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;

fn segment(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&e| value <= e).unwrap_or(8)
}

pub fn linear_to_ulaw(sample: i16) -> u8 {
    // 14-bit magnitude, as G.711 µ-law is defined on.
    let mut pcm = i32::from(sample) >> 2;
    let mask: i32 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    pcm = pcm.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let seg = segment(pcm, &[0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((pcm >> (seg + 1)) & 0xF);
    (uval ^ mask) as u8
}

pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mut t = ((i32::from(u) & 0x0F) << 3) + ULAW_BIAS;
    t <<= (i32::from(u) & 0x70) >> 4;
    let v = if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    };
    v as i16
}

pub fn linear_to_alaw(sample: i16) -> u8 {
    // 13-bit magnitude for A-law.
    let mut pcm = i32::from(sample) >> 3;
    let mask: i32 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &[0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = (seg as i32) << 4;
    aval |= if seg < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> seg) & 0x0F
    };
    (aval ^ mask) as u8
}

pub fn alaw_to_linear(code: u8) -> i16 {
    let a = i32::from(code ^ 0x55);
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// The two G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    Ulaw,
    Alaw,
}

impl Law {
    pub fn encode(self, s: i16) -> u8 {
        match self {
            Law::Ulaw => linear_to_ulaw(s),
            Law::Alaw => linear_to_alaw(s),
        }
    }

    pub fn decode(self, c: u8) -> i16 {
        match self {
            Law::Ulaw => ulaw_to_linear(c),
            Law::Alaw => alaw_to_linear(c),
        }
    }

    pub fn silence(self) -> u8 {
        match self {
            Law::Ulaw => ULAW_SILENCE,
            Law::Alaw => ALAW_SILENCE,
        }
    }

    /// Static RTP payload type (RFC 3551 §6).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }
}

/// Code-to-code translation tables, so a bridge between a PCMU leg and a
/// PCMA leg costs one lookup per byte.
pub struct Transcoder {
    u2a: [u8; 256],
    a2u: [u8; 256],
}

impl Transcoder {
    pub fn new() -> Self {
        let mut u2a = [0u8; 256];
        let mut a2u = [0u8; 256];
        for (i, (ua, au)) in u2a.iter_mut().zip(a2u.iter_mut()).enumerate() {
            let code = i as u8;
            *ua = linear_to_alaw(ulaw_to_linear(code));
            *au = linear_to_ulaw(alaw_to_linear(code));
        }
        Transcoder { u2a, a2u }
    }

    /// Translates `payload` in place from `from` to `to`.
    pub fn translate(&self, from: Law, to: Law, payload: &mut [u8]) {
        let table = match (from, to) {
            (Law::Ulaw, Law::Alaw) => &self.u2a,
            (Law::Alaw, Law::Ulaw) => &self.a2u,
            _ => return,
        };
        for b in payload {
            *b = table[usize::from(*b)];
        }
    }
}

impl Default for Transcoder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes() {
        assert_eq!(linear_to_ulaw(0), ULAW_SILENCE);
        assert_eq!(linear_to_alaw(0), ALAW_SILENCE);
        assert_eq!(ulaw_to_linear(ULAW_SILENCE), 0);
        assert!(alaw_to_linear(ALAW_SILENCE).abs() <= 8);
    }

    #[test]
    fn every_code_round_trips() {
        for c in 0..=255u8 {
            // 0x7F (µ-law "negative zero") decodes to 0, which encodes as 0xFF.
            if c != 0x7F {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(c)), c, "ulaw {c:#x}");
            }
            assert_eq!(linear_to_alaw(alaw_to_linear(c)), c, "alaw {c:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            for law in [Law::Ulaw, Law::Alaw] {
                let back = law.decode(law.encode(s));
                let err = (i32::from(back) - i32::from(s)).abs();
                // Logarithmic: the error grows with the magnitude, about 1/16.
                let bound = (i32::from(s).abs() / 14).max(16) + 64;
                assert!(err <= bound, "{law:?} {s} -> {back}");
            }
        }
    }

    #[test]
    fn known_values() {
        // Reference points from the G.711 tables.
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
    }

    #[test]
    fn transcoding_matches_decode_encode() {
        let t = Transcoder::new();
        let mut buf: Vec<u8> = (0..=255).collect();
        t.translate(Law::Ulaw, Law::Alaw, &mut buf);
        for (i, b) in buf.iter().enumerate() {
            assert_eq!(*b, linear_to_alaw(ulaw_to_linear(i as u8)));
        }
    }
}
