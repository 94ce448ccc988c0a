//! The workload's people and markers: every value here is distinctive, so finding it in a dump
//! can only mean the server kept it in plaintext.

use super::api::Net;
use super::search::Needles;

/// A user as the workload registers them.
pub struct Person {
    pub label: &'static str,
    pub name: &'static str,
    pub nick: &'static str,
    /// The normalized number the server must answer with.
    pub phone: &'static str,
    /// What the client sends to `/register` (formatted variants exercise normalization).
    pub phone_input: &'static str,
    pub password: &'static str,
    pub net: Net,
}

pub const ALICE: Person = Person {
    label: "alice",
    name: "Quentessa Marlowe",
    nick: "quentessa_m",
    phone: "+79991234567",
    phone_input: "8 (999) 123-45-67",
    password: "Zk-Audit-Pass-A1",
    net: Net {
        ua: "ZkAuditAgent/7.1 (Quokkaphone; Android 14)",
        ip: "198.51.100.77",
    },
};

pub const BOB: Person = Person {
    label: "bob",
    name: "Bartholomew Fenwick",
    nick: "barty_fen",
    phone: "+79992345678",
    phone_input: "+7 999 234-56-78",
    password: "Zk-Audit-Pass-B2",
    net: Net {
        ua: "ZkDesktopProbe/2.0 Electron",
        ip: "2001:db8::77",
    },
};

pub const CAROL: Person = Person {
    label: "carol",
    name: "Cordelia Ashgrove",
    nick: "cordash",
    phone: "+79993456789",
    phone_input: "79993456789",
    password: "Zk-Audit-Pass-C3",
    net: Net {
        ua: "ZkTabletProbe/3.3 (iPad)",
        ip: "203.0.113.41",
    },
};

pub const DAVE: Person = Person {
    label: "dave",
    name: "Desmond Thornbury",
    nick: "desthorn",
    phone: "+79994567890",
    phone_input: "+79994567890",
    password: "Zk-Audit-Pass-D4",
    net: Net {
        ua: "ZkWebProbe/4.4 (Gecko)",
        ip: "2001:db8:4a::1d",
    },
};

pub const PEOPLE: [&Person; 4] = [&ALICE, &BOB, &CAROL, &DAVE];

/// Registers, exports everything the server holds about her, and deletes her account.
pub const ERIN: Person = Person {
    label: "erin",
    name: "Evangeline Quarrington",
    nick: "evquarr_zk",
    phone: "+79995678901",
    phone_input: "+7 (999) 567-89-01",
    password: "Zk-Audit-Pass-E5",
    net: Net {
        ua: "ZkEraseProbe/5.5 (X11; Linux)",
        ip: "198.51.100.91",
    },
};

/// A DM's client ciphertext: stored as it came (not PII), so every store dump must show it.
pub const DM_PAYLOAD: &str = "WktETS0x";
/// A phone nobody registered, tried at `/login` (failed-login bookkeeping).
pub const UNKNOWN_PHONE: &str = "+79997654321";
pub const WRONG_PASSWORD: &str = "Zk-Wrong-Guess-99";
pub const USERNAME: &str = "qmarlowe_zk";
pub const BIO: &str = "Collector of antique barometers and tide tables";
pub const NEW_NICK: &str = "barty_renamed";
pub const GROUP: &str = "Marmalade Syndicate";
pub const CHANNEL: &str = "Obsidian Lighthouse Bulletin";
pub const SECRET_BACKUP: &str = "ZKSECRETBACKUPCIPHERTEXT0123456789";
pub const AVATAR_MARKER: &str = "ZKAVATARPIXELMARKER";
pub const PUSH_PATH: &str = "/zk-push/endpoint-7c1e5a";
pub const FCM_TOKEN: &str = "zk-fcm-token-5d2f9b";
/// SDP and ICE carry client addresses: they are relayed, and held only sealed.
pub const SDP_IP: &str = "192.0.2.201";
pub const SDP_MARKER: &str = "a=zk-sdp-marker-5150";
pub const CANDIDATE_IP: &str = "192.0.2.202";

pub fn sdp(kind: &str) -> String {
    format!(
        "v=0\r\no=- 4611 2 IN IP4 {SDP_IP}\r\ns=zk-{kind}\r\nc=IN IP4 {SDP_IP}\r\n{SDP_MARKER}\r\n"
    )
}

pub fn candidate() -> String {
    format!("candidate:7 1 UDP 2122252543 {CANDIDATE_IP} 50000 typ host")
}

/// An IPv6 address also in its fully expanded form.
fn ip(needles: &mut Needles, label: &str, text: &str) {
    needles.add(label, text);
    if let Ok(v6) = text.parse::<std::net::Ipv6Addr>() {
        let s = v6.segments().map(|s| format!("{s:04x}")).join(":");
        needles.add(format!("{label} (expanded)"), s);
    }
}

/// The fixed plaintexts of the workload (values the server returns are added as they come).
pub fn fixed_needles() -> Needles {
    let mut n = Needles::default();
    for p in PEOPLE.into_iter().chain([&ERIN]) {
        n.phone(p.label, p.phone);
        n.add(format!("{} name", p.label), p.name);
        n.add(format!("{} nickname", p.label), p.nick);
        n.add(format!("{} password", p.label), p.password);
        n.add(format!("{} user agent", p.label), p.net.ua);
        ip(&mut n, &format!("{} IP", p.label), p.net.ip);
    }
    n.add("user agent product", "ZkAuditAgent");
    n.add("client IP of the TCP peer", "127.0.0.1");
    n.phone("unknown login", UNKNOWN_PHONE);
    n.add("wrong password", WRONG_PASSWORD);
    n.add("username", USERNAME);
    n.add("bio", BIO);
    n.add("new nickname", NEW_NICK);
    n.add("group chat name", GROUP);
    n.add("channel name", CHANNEL);
    n.add("secret-key backup", SECRET_BACKUP);
    n.add("avatar content", AVATAR_MARKER);
    n.add("push endpoint path", PUSH_PATH);
    n.add("push token (FCM)", FCM_TOKEN);
    n.add("SDP address", SDP_IP);
    n.add("SDP content", SDP_MARKER);
    n.add("ICE candidate address", CANDIDATE_IP);
    let pem = crate::common::user_pem();
    n.add(
        "E2E public key (PEM body)",
        pem.lines().nth(1).expect("pem body"),
    );
    n
}
