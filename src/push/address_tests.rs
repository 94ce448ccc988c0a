use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn internal_addresses_are_refused() {
    for s in [
        // IPv4
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "192.168.255.255",
        "169.254.169.254",
        "169.254.0.1",
        "100.64.0.1",
        "100.127.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "192.88.99.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        // IPv6
        "::",
        "::1",
        "::127.0.0.1",
        "::8.8.8.8",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "::ffff:100.64.0.1",
        "::ffff:0.0.0.0",
        "64:ff9b::127.0.0.1",
        "64:ff9b::a00:1",
        "64:ff9b:1::1",
        "100::1",
        "fc00::1",
        "fd00::1",
        "fdff:ffff::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "2001::1",
        "2001:0:4136:e378::1",
        "2001:10::1",
        "2001:1ff::1",
        "2001:db8::1",
        "2002:7f00:1::1",
        "2002:a00:1::1",
        "2002:c0a8:101::1",
        "3fff::1",
        "3fff:fff::1",
        "4000::1",
    ] {
        assert!(!is_public_ip(ip(s)), "{s} must be refused");
    }
}

#[test]
fn public_addresses_pass() {
    for s in [
        "1.1.1.1",
        "8.8.8.8",
        "93.184.215.14",
        "142.250.185.74",
        "9.255.255.255",
        "11.0.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.1.1",
        "192.167.255.255",
        "192.169.0.1",
        "198.17.255.255",
        "198.20.0.1",
        "223.255.255.255",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
        "2001:200::1",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "2a00:1450:4001:82b::200a",
        "3ffe::1",
        "3fff:1000::1",
    ] {
        assert!(is_public_ip(ip(s)), "{s} must pass");
    }
}

#[test]
fn endpoint_hosts() {
    for (url, host, port) in [
        ("https://push.example/abc", "push.example", 443),
        ("https://Push.Example.:8443/a", "push.example", 8443),
        ("http://127.0.0.1:1/x", "127.0.0.1", 1),
        ("https://[::1]/x", "::1", 443),
        ("https://[fd00::1]:9/x", "fd00::1", 9),
        (
            "HTTPS://fcm.googleapis.com/fcm/send/x",
            "fcm.googleapis.com",
            443,
        ),
    ] {
        assert_eq!(endpoint_host(url), Some((host.to_owned(), port)), "{url}");
    }
    for bad in [
        "ftp://push.example/p",
        "/relative",
        "not a uri",
        "https://",
        "",
    ] {
        assert_eq!(endpoint_host(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn registration_check() {
    let t = Duration::from_secs(3);
    assert_eq!(check_host("8.8.8.8", 443, t).await, Ok(()));
    assert_eq!(
        check_host("::1", 443, t).await,
        Err(AddressError::NotPublic)
    );
    assert_eq!(
        check_host("localhost", 443, t).await,
        Err(AddressError::NotPublic)
    );
    assert_eq!(
        check_host("no-such-host.invalid", 443, t).await,
        Err(AddressError::NoAddress)
    );
}

#[test]
fn delivery_filter_keeps_public_addresses_only() {
    let a = |s: &str| SocketAddr::new(ip(s), 443);
    assert_eq!(
        public_only(vec![a("127.0.0.1"), a("8.8.8.8"), a("10.0.0.1")]),
        Ok(vec![a("8.8.8.8")])
    );
    assert_eq!(
        public_only(vec![a("127.0.0.1"), a("::1")]),
        Err(AddressError::NotPublic)
    );
    assert_eq!(public_only(vec![]), Err(AddressError::NoAddress));
}
