//! The client's address: the socket's peer, unless that peer is a trusted proxy, in which case
//! the nearest address in `X-Forwarded-For` that is not itself a trusted proxy. A client cannot
//! forge its way around per-address limits by sending the header itself.

use actix_web::dev::ServiceRequest;
use ipnet::IpNet;
use std::net::IpAddr;

/// The resolved client address, in request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

fn trusted(ip: &IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|net| net.contains(ip))
}

/// Resolves the client address of `req`.
pub fn resolve(req: &ServiceRequest, proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    if !trusted(&peer, proxies) {
        return Some(peer);
    }
    // Walk the chain from the nearest hop outwards; the first untrusted address is the client.
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    Some(
        forwarded
            .iter()
            .rev()
            .find(|ip| !trusted(ip, proxies))
            .copied()
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req(peer: &str, xff: Option<&str>) -> ServiceRequest {
        let mut r = TestRequest::default().peer_addr(format!("{peer}:5000").parse().unwrap());
        if let Some(x) = xff {
            r = r.insert_header(("X-Forwarded-For", x));
        }
        r.to_srv_request()
    }

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            resolve(&req("203.0.113.7", Some("1.2.3.4")), &proxies),
            Some("203.0.113.7".parse().unwrap())
        );
    }

    #[test]
    fn trusted_proxies_pass_the_nearest_untrusted_address() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            resolve(
                &req("10.0.0.5", Some("1.2.3.4, 198.51.100.9, 10.0.0.7")),
                &proxies
            ),
            Some("198.51.100.9".parse().unwrap())
        );
        assert_eq!(
            resolve(&req("10.0.0.5", None), &proxies),
            Some("10.0.0.5".parse().unwrap())
        );
    }
}
