//! Signing in to the console as a browser does, for tests that use it.

use reqwest::header::{CONTENT_TYPE, SET_COOKIE};

/// Sign in with `token` through the console's form: the `yz_session=ID` pair a browser
/// sends back. Panics when the sign-in is refused. Its own client keeps no connection
/// open afterwards (tests that count connections).
pub async fn sign_in(base: &str, token: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let resp = http
        .post(format!("{base}/console/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("POST /console/login");
    session_pair(&resp).unwrap_or_else(|| panic!("sign-in refused: {}", resp.status()))
}

/// The `yz_session=ID` pair a sign-in response sets, if it sets one.
pub fn session_pair(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .find(|p| p.starts_with("yz_session=") && p.len() > "yz_session=".len())
        .map(str::to_string)
}

/// The CSRF token of the session in a `yz_session=ID` pair, as the server's forms carry it.
pub fn csrf(secret: &str, pair: &str) -> String {
    let id = pair.trim_start_matches("yz_session=");
    yanzhen::access::LinkSigner::new(secret).csrf_token(id)
}
