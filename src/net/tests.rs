use super::client::{get, post_json, Download, Policy};
use super::testing::FakeServer;
use crate::stream::fill;
use alloc::vec;
use alloc::vec::Vec;

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

fn read_all(d: &mut Download<'_, FakeServer>) -> Result<Vec<u8>, super::client::HttpError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = fill(d, &mut buf)?;
        out.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            return Ok(out);
        }
    }
}

#[test]
fn plain_download_knows_its_size() {
    let data = image(300_000);
    let mut s = FakeServer::serving("/img", data.clone());
    let mut d = Download::start(&mut s, "http://10.0.2.2:8080/img", Policy::default()).unwrap();
    assert_eq!(d.total(), Some(300_000));
    assert_eq!(read_all(&mut d).unwrap(), data);
    drop(d);
    assert!(s.requests[0].starts_with("GET /img HTTP/1.1\r\nHost: 10.0.2.2:8080\r\n"));
}

#[test]
fn dropped_connections_resume_with_range_and_if_range() {
    let data = image(1_000_000);
    let mut s = FakeServer::serving("/img", data.clone());
    s.etag = Some("\"v1\"".into());
    s.cut_after = [100_000, 250_000].into();
    let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
    let got = read_all(&mut d).unwrap();
    assert_eq!(d.resumes, 2);
    drop(d);
    assert_eq!(got, data);
    assert!(
        s.requests[1].contains("Range: bytes=100000-\r\n"),
        "{}",
        s.requests[1]
    );
    assert!(s.requests[1].contains("If-Range: \"v1\"\r\n"));
    assert!(s.requests[2].contains("Range: bytes=350000-\r\n"));
}

#[test]
fn a_server_without_ranges_restarts_and_skips() {
    let data = image(500_000);
    let mut s = FakeServer::serving("/img", data.clone());
    s.ranges = false;
    s.cut_after = [123_456].into();
    let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
    let got = read_all(&mut d).unwrap();
    assert_eq!((d.restarts, d.resumes), (1, 0));
    assert_eq!(got, data, "bytes after a restart from 0 must line up");
}

#[test]
fn parts_read_at_an_offset_leave_the_stream_where_it_was() {
    use crate::io::ImageSource;
    let data = image(400_000);
    let mut s = FakeServer::serving("/img", data.clone());
    s.etag = Some("\"v1\"".into());
    let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
    let mut head = vec![0u8; 1000];
    assert_eq!(fill(&mut d, &mut head).unwrap(), 1000);
    let mut part = vec![0u8; 5000];
    assert_eq!(d.read_at(300_000, &mut part), Some(Ok(())));
    assert_eq!(part, data[300_000..305_000]);
    let rest = read_all(&mut d).unwrap();
    drop(d);
    assert_eq!([&head[..], &rest[..]].concat(), data);
    assert!(
        s.requests[1].contains("Range: bytes=300000-304999\r\n"),
        "{}",
        s.requests[1]
    );
    assert!(s.requests[1].contains("If-Range: \"v1\"\r\n"));
    assert!(
        s.requests[2].contains("Range: bytes=1000-\r\n"),
        "{}",
        s.requests[2]
    );
}

#[test]
fn a_server_without_ranges_reads_no_parts_and_the_stream_goes_on() {
    use crate::io::ImageSource;
    let data = image(200_000);
    let mut s = FakeServer::serving("/img", data.clone());
    s.ranges = false;
    let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
    let mut part = vec![0u8; 100];
    assert_eq!(d.read_at(1000, &mut part), None);
    assert_eq!(read_all(&mut d).unwrap(), data);
}

#[test]
fn chunked_bodies_decode_and_resume_from_scratch() {
    let data = image(100_000);
    let mut s = FakeServer::serving("/img", data.clone());
    s.chunked = true;
    s.segment = 1_000;
    let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
    assert_eq!(d.total(), None);
    assert_eq!(read_all(&mut d).unwrap(), data);
}

#[test]
fn refused_and_5xx_are_retried_with_backoff() {
    let data = image(10_000);
    let mut s = FakeServer::serving("/img", data.clone());
    s.refuse = 2;
    s.fail_with = [503, 502].into();
    let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
    assert_eq!(read_all(&mut d).unwrap(), data);
    drop(d);
    // Backoff 1 s, 2 s, 4 s, 8 s on the scripted clock.
    assert!(s.now >= 15_000, "slept only {} ms", s.now);
}

#[test]
fn failures_that_will_not_heal_are_final() {
    let mut s = FakeServer::serving("/img", image(10));
    let e = Download::start(&mut s, "http://h/missing", Policy::default())
        .err()
        .unwrap();
    assert_eq!(e.status, Some(404));
    assert_eq!(s.requests.len(), 1, "4xx must not be retried");

    let mut s = FakeServer::serving("/img", image(10));
    s.refuse = 100;
    let e = Download::start(&mut s, "http://h/img", Policy::default())
        .err()
        .unwrap();
    assert!(e.message.contains("giving up after 10 attempts"), "{e}");

    let mut s = FakeServer::serving("/img", image(10));
    s.hang = 100;
    let policy = Policy {
        retries: 1,
        ..Policy::default()
    };
    let e = Download::start(&mut s, "http://h/img", policy)
        .err()
        .unwrap();
    assert!(e.message.contains("no data for 60000 ms"), "{e}");

    let mut s = FakeServer::serving("/img", image(10));
    let e = Download::start(
        &mut s,
        "http://unresolvable.invalid/img",
        Policy {
            retries: 0,
            ..Policy::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.message.contains("cannot resolve"), "{e}");
}

#[test]
fn https_runs_a_handshake_with_the_url_host_and_follows_redirects_across_schemes() {
    let data = image(5_000);
    let mut s = FakeServer::serving("/real", data.clone());
    s.redirects
        .insert("/a".into(), "https://mirror.example:8443/b".into());
    s.redirects
        .insert("/b".into(), "http://plain.example/real".into());
    let mut d = Download::start(&mut s, "http://h/a", Policy::default()).unwrap();
    assert_eq!(read_all(&mut d).unwrap(), data);
    drop(d);
    // Only the https hop is encrypted, and it checks the host it names.
    assert_eq!(s.tls_hosts, ["mirror.example"]);
    assert_eq!(s.requests.len(), 3);

    let (status, body) = crate::net::client::exchange(
        &mut s,
        "GET",
        "https://api.example/v1",
        &[],
        None,
        Policy::default(),
    )
    .unwrap();
    assert_eq!((status, body.len()), (404, 0));
    assert_eq!(s.tls_hosts.last().map(String::as_str), Some("api.example"));
}

#[test]
fn a_refused_certificate_is_final_not_retried() {
    let mut s = FakeServer::serving("/img", image(10));
    s.tls_refusal = Some("invalid peer certificate: UnknownIssuer".into());
    let e = Download::start(&mut s, "https://images.example/img", Policy::default())
        .err()
        .unwrap();
    assert!(
        e.message
            .contains("TLS with images.example: invalid peer certificate"),
        "{e}"
    );
    assert_eq!(
        (s.tls_hosts.len(), s.requests.len()),
        (1, 0),
        "one handshake, no request"
    );
    assert_eq!(s.now, 1, "no backoff sleeps");

    let e = crate::net::client::exchange(
        &mut s,
        "POST",
        "https://api.example/v1",
        &[],
        Some(b"{}"),
        Policy::default(),
    )
    .unwrap_err();
    assert!(e.message.contains("UnknownIssuer"), "{e}");
    assert_eq!(s.tls_hosts.len(), 2);
}

#[test]
fn redirects_are_followed_and_bounded() {
    let data = image(1_000);
    let mut s = FakeServer::serving("/real", data.clone());
    s.redirects.insert("/a".into(), "/real".into());
    let mut d = Download::start(&mut s, "http://h/a", Policy::default()).unwrap();
    assert_eq!(read_all(&mut d).unwrap(), data);
    drop(d);
    s.redirects.insert("/loop".into(), "/loop".into());
    let e = Download::start(&mut s, "http://h/loop", Policy::default())
        .err()
        .unwrap();
    assert!(e.message.contains("more than 5 redirects"), "{e}");
}

#[test]
fn small_gets_are_bounded_and_posts_arrive() {
    let mut s = FakeServer::serving("/plan.json", b"{\"root_mb\": 10}".to_vec());
    assert_eq!(
        get(&mut s, "http://h/plan.json", 1024, Policy::default()).unwrap(),
        b"{\"root_mb\": 10}"
    );
    let e = get(&mut s, "http://h/plan.json", 4, Policy::default()).unwrap_err();
    assert!(
        e.message.contains("15 bytes, more than the 4 allowed"),
        "{e}"
    );
    s.fail_with = [500].into();
    let (status, body) = post_json(
        &mut s,
        "http://h/callback",
        b"{\"ok\": true}",
        Policy::default(),
    )
    .unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));
    assert_eq!(
        s.posts,
        vec![("/callback".into(), b"{\"ok\": true}".to_vec())]
    );
}

#[test]
fn a_truncated_body_without_retries_is_an_error_naming_the_byte() {
    let data = image(100_000);
    let mut s = FakeServer::serving("/img", data);
    s.cut_after = [40_000, 40_000].into();
    s.ranges = false;
    let policy = Policy {
        retries: 1,
        ..Policy::default()
    };
    let mut d = Download::start(&mut s, "http://h/img", policy).unwrap();
    let e = read_all(&mut d).unwrap_err();
    assert!(e.message.contains("giving up after 2 attempts"), "{e}");
    assert!(
        e.message.contains("bytes of the response missing") || e.message.contains("resume point"),
        "{e}"
    );
}

#[test]
fn a_handshake_that_never_completes_is_a_timeout_not_a_refusal() {
    use super::stack::{Addressing, Stack};
    use super::testing::{ScriptedWait, Silent};
    use super::{NetErrorKind, Transport};
    use smoltcp::wire::{IpCidr, Ipv4Address, Ipv4Cidr};
    let addressing = Addressing::Static {
        cidr: IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(10, 77, 1, 100), 24)),
        gateway: None,
        dns: vec![],
    };
    let mut stack = Stack::new(
        Silent { sent: 0 },
        ScriptedWait::default(),
        [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        addressing,
        7,
    );
    let err = stack.connect("10.77.1.1", 6385, 10_000).unwrap_err();
    assert_eq!(err.kind, NetErrorKind::Timeout, "{}", err.message);
    assert!(
        err.message.contains("10.77.1.1:6385") && err.message.contains("handshake never completed"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("refused"), "{}", err.message);
    assert!(stack.waiter.now >= 10_000, "the whole deadline was waited");
    assert!(stack.device.sent > 0, "it did try");
}

#[test]
fn a_document_trickled_just_inside_the_idle_timeout_is_given_up() {
    // 100 KiB, 100 bytes a time, each 5 s apart: never idle for 60 s, but
    // 85 minutes in all. A checksum file or config drive must not hold a
    // deploy that long.
    let mut s = FakeServer::serving("/sums", vec![b'x'; 100 * 1024]);
    s.segment = 100;
    s.recv_delay_ms = 5_000;
    let err = get(
        &mut s,
        "http://10.0.2.2:8080/sums",
        1 << 20,
        Policy::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("slower than 65536 bytes/s"),
        "{err}"
    );
    // Idle timeout (60 s) + 100 KiB at 64 KiB/s = 61.6 s, noticed at the
    // next 5 s read.
    assert!(s.now < 75_000, "gave up at {} ms", s.now);
    // At a normal pace the same document arrives.
    let mut s = FakeServer::serving("/sums", vec![b'x'; 100 * 1024]);
    s.recv_delay_ms = 1;
    assert_eq!(
        get(
            &mut s,
            "http://10.0.2.2:8080/sums",
            1 << 20,
            Policy::default()
        )
        .unwrap()
        .len(),
        100 * 1024
    );
}

#[test]
fn an_ipv6_url_waits_for_an_ipv6_address_and_says_what_never_came() {
    use super::stack::{Addressing, Stack};
    use super::testing::{ScriptedWait, Silent};
    use super::{NetErrorKind, Transport};
    use smoltcp::wire::{IpCidr, Ipv4Address, Ipv4Cidr};
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let mut auto = Stack::new(
        Silent { sent: 0 },
        ScriptedWait::default(),
        mac,
        Addressing::Dhcp,
        7,
    );
    let err = auto.wait_for_address(5_000).unwrap_err();
    assert_eq!(err.kind, NetErrorKind::Timeout, "{}", err.message);
    assert!(
        err.message.contains(
            "no address: no DHCPv4 lease, no IPv6 router advertisement or DHCPv6 lease within 5 s"
        ),
        "{}",
        err.message
    );
    let err = auto.connect("fd00::1", 6385, 5_000).unwrap_err();
    assert!(
        err.message.starts_with("no IPv6 address"),
        "{}",
        err.message
    );
    // A link-local peer needs only rivet's link-local address: the
    // connection is tried (and here never answered).
    let err = auto.connect("fe80::1%eth0", 6385, 5_000).unwrap_err();
    assert!(
        err.message.contains("handshake never completed"),
        "{}",
        err.message
    );
    // Meanwhile: router solicitations at 0 and 4 s, a DHCPv4 discover.
    assert!(auto.device.sent >= 3, "{} frames sent", auto.device.sent);
    let v4_only = Addressing::Static {
        cidr: IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(10, 77, 1, 100), 24)),
        gateway: None,
        dns: vec![],
    };
    let mut stack = Stack::new(Silent { sent: 0 }, ScriptedWait::default(), mac, v4_only, 7);
    let err = stack.connect("fd00::1%eth0", 6385, 5_000).unwrap_err();
    assert_eq!(err.kind, NetErrorKind::Timeout, "{}", err.message);
    assert!(
        err.message.starts_with("no IPv6 address"),
        "{}",
        err.message
    );
}

/// A server that answers every request, resumes included, but cuts each
/// connection after 300 bytes: before, every byte received started the
/// retry count again and the download never ended (here: 400 cuts, then
/// it would have finished). Now the attempts without a MiB of progress
/// between them run out as the policy's retries do.
#[test]
fn a_server_that_drops_every_connection_early_runs_out_of_retries() {
    let data = image(4 << 20);
    let mut s = FakeServer::serving("/img", data.clone());
    s.cut_after = vec![300u64; 400].into();
    let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
    let err = read_all(&mut d).unwrap_err().to_string();
    assert!(
        err.contains(
            "giving up after 10 attempts at byte 3000 (less than 1048576 bytes between them)"
        ),
        "{err}"
    );
    drop(d);
    assert_eq!(s.requests.len(), 10);
    // A flaky link that gets a MiB through each time keeps its retries.
    let mut s = FakeServer::serving("/img", data.clone());
    s.cut_after = vec![1 << 20; 3].into();
    let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
    assert_eq!(read_all(&mut d).unwrap(), data);
    assert_eq!(d.resumes, 3);
}

/// `100 Continue` without end before the answer: refused after eight.
#[test]
fn endless_interim_responses_are_refused() {
    let mut s = FakeServer::serving("/img", image(1000));
    s.interim = 2;
    let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
    assert_eq!(read_all(&mut d).unwrap().len(), 1000);
    drop(d);
    let mut s = FakeServer::serving("/img", image(1000));
    s.interim = 1000;
    let err = Download::start(&mut s, "http://h/img", Policy::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("more than 8 interim (1xx) responses before the final one"),
        "{err}"
    );
}

/// A body of known size trickled just inside the idle timeout: given up
/// once it falls behind the policy's minimum average rate.
#[test]
fn a_trickled_body_is_given_up_at_the_minimum_average_rate() {
    let data = image(2 << 20);
    let mut s = FakeServer::serving("/img", data);
    s.segment = 1000;
    s.recv_delay_ms = 1_000;
    let policy = Policy {
        min_rate_bytes_per_s: 64 * 1024,
        ..Policy::default()
    };
    let mut d = Download::start(&mut s, "http://h/img", policy).unwrap();
    let err = read_all(&mut d).unwrap_err().to_string();
    assert!(
        err.contains("slower than 65536 bytes/s on average, given up"),
        "{err}"
    );
}

/// The file is replaced on the server while it downloads: the resume
/// finds another ETag. Whether the server answers If-Range with the new
/// file (200) or ignores it (206 from the new file), the parts would mix:
/// refused, naming both validators.
#[test]
fn a_file_replaced_mid_download_is_refused_not_mixed() {
    for ignores_if_range in [false, true] {
        let mut s = FakeServer::serving("/img", image(1_000_000));
        s.etag = Some("\"v1\"".into());
        s.new_etag = Some((1, "\"v2\"".into()));
        s.ignore_if_range = ignores_if_range;
        s.cut_after = [100_000].into();
        let mut d = Download::start(&mut s, "http://h/img", Policy::default()).unwrap();
        let err = read_all(&mut d).unwrap_err().to_string();
        assert!(
            err.contains(
                "the file changed on the server between connections (validator \"v1\", now \"v2\"): \
                 its parts would mix; refused at byte 100000"
            ),
            "{ignores_if_range}: {err}"
        );
    }
}

fn static_stack(
    cidr: &str,
    inbox: Vec<Vec<u8>>,
) -> super::stack::Stack<super::testing::Recorder, super::testing::ScriptedWait> {
    use super::stack::{Addressing, Stack};
    use super::testing::{Recorder, ScriptedWait};
    let cidr: smoltcp::wire::IpCidr = cidr.parse().unwrap();
    let device = Recorder {
        inbox: inbox.into(),
        ..Recorder::default()
    };
    let addressing = Addressing::Static {
        cidr,
        gateway: None,
        dns: vec![],
    };
    Stack::new(device, ScriptedWait { now: 1_000 }, MAC, addressing, 7)
}

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const FD5: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];

/// Duplicate address detection with scripted time: a static IPv6 address
/// is probed, used after a silent second; claimed by another node's
/// advertisement, it is refused by name at once. (tests/net_host.rs has
/// a real kernel answer the probe.)
#[test]
fn a_static_ipv6_address_is_probed_and_used_only_when_nobody_claims_it() {
    use crate::wire::ndisc;
    let mut stack = static_stack("fd00::5/64", vec![]);
    let lease = stack.wait_for(Some(true), 10_000).unwrap();
    assert_eq!(lease.address.to_string(), "fd00::5/64");
    assert!(
        stack.waiter.now >= 2_000,
        "a second's wait: {}",
        stack.waiter.now
    );
    assert!(stack
        .device
        .sent
        .iter()
        .any(|f| f[..] == ndisc::dad_probe(MAC, &FD5)));

    let other = [0x02, 0, 0, 0, 0, 0x99];
    let claim = ndisc::unsolicited_advert(other, &FD5).to_vec();
    let mut stack = static_stack("fd00::5/64", vec![claim]);
    let err = stack.wait_for(Some(true), 10_000).unwrap_err();
    assert!(
        err.message.contains("fd00::5/64 is in use by another node"),
        "{}",
        err.message
    );
    assert!(stack.waiter.now < 2_000, "refused at once");
    // Our own probe, back through another port of a bond, is no claim.
    let echo = ndisc::dad_probe(MAC, &FD5).to_vec();
    let mut stack = static_stack("fd00::5/64", vec![echo]);
    assert!(stack.wait_for(Some(true), 10_000).is_ok());
}

/// After a bond's failover the stack announces its addresses on the new
/// port: an ARP announcement for IPv4, an unsolicited advertisement per
/// IPv6 address (the link-local one at least).
#[test]
fn a_failover_is_followed_by_announcements() {
    use crate::wire::{arp, ndisc};
    let mut stack = static_stack("10.77.1.100/24", vec![]);
    stack.poll();
    assert!(
        !stack.device.sent.iter().any(|f| f[12..14] == [0x08, 0x06]),
        "no ARP unasked"
    );
    stack.device.fail_over = true;
    stack.poll();
    let sent = &stack.device.sent;
    assert!(sent
        .iter()
        .any(|f| f[..] == arp::announcement(MAC, [10, 77, 1, 100])));
    assert!(sent
        .iter()
        .any(|f| f[..] == ndisc::unsolicited_advert(MAC, &ndisc::link_local(MAC))));
    let mut stack = static_stack("fd00::5/64", vec![]);
    stack.wait_for(Some(true), 10_000).unwrap();
    stack.device.fail_over = true;
    stack.poll();
    assert!(stack
        .device
        .sent
        .iter()
        .any(|f| f[..] == ndisc::unsolicited_advert(MAC, &FD5)));
}

fn bearer() -> crate::plan::auth::Authorization {
    // base64 of "Bearer tok.en" as Ironic passes an OCI registry token.
    let v: serde_json::Value =
        serde_json::from_str(r#"{"image_request_authorization": "QmVhcmVyIHRvay5lbg=="}"#).unwrap();
    crate::plan::auth::Authorization::from_plan(v.as_object().unwrap())
        .unwrap()
        .unwrap()
}

/// Issue 31: a registry's token goes on the first request only: the
/// blob's 307 to a CDN, and the resume there after a cut, go without it
/// (python-requests since CVE-2018-18074). A 401 while resuming is a
/// final error naming the registry, not a retry loop.
#[test]
fn the_authorization_stays_with_its_origin_and_a_refusal_is_final() {
    use super::client::{Download, Policy};
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = FakeServer::serving("/blob", data.clone());
    s.redirects
        .insert("/v2/blob".into(), "http://cdn.example:8080/blob".into());
    s.cut_after = [0, 100_000].into();
    let access = super::client::Access {
        auth: Some(bearer()),
        ..Default::default()
    };
    let url = "http://registry.example/v2/blob";
    let mut d = Download::start_with(&mut s, url, Policy::default(), &access).unwrap();
    assert!(read_all(&mut d).unwrap() == data);
    drop(d);
    let (first, rest) = s.requests.split_first().unwrap();
    assert!(
        first.contains("Host: registry.example\r\n")
            && first.contains("Authorization: Bearer tok.en\r\n"),
        "{first}"
    );
    assert!(rest.len() >= 2, "the CDN's GET and its resume: {rest:?}");
    for r in rest {
        assert!(
            r.contains("Host: cdn.example:8080\r\n") && !r.contains("Authorization"),
            "{r}"
        );
    }
    assert!(
        rest.iter().any(|r| r.contains("Range: bytes=100000-")),
        "{rest:?}"
    );

    // Expired while streaming: the resume is answered 401.
    let mut s = FakeServer::serving("/v2/blob", data.clone());
    s.cut_after = [100_000].into();
    s.fail_with = [0, 401].into();
    let mut d = Download::start_with(&mut s, url, Policy::default(), &access).unwrap();
    let err = read_all(&mut d).unwrap_err().to_string();
    drop(d);
    assert!(err.contains(url) && err.contains("401"), "{err}");
    assert_eq!(s.requests.len(), 2, "no retry after a refusal");
    assert!(s
        .requests
        .iter()
        .all(|r| r.contains("Authorization: Bearer tok.en")));
}
