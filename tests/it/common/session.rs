//! Signing in to the console and posting its forms as a browser does, for tests that use it.

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};

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

/// `pairs` percent-encoded as an `application/x-www-form-urlencoded` body.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

/// POST `pairs` to `url` as a browser submits a form, with the cookie pair `cookie` if given.
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    pairs: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = http
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form_body(pairs));
    if let Some(c) = cookie {
        r = r.header(COOKIE, c);
    }
    r.send().await.expect("POST form")
}

/// A console session as a browser holds it: the `yz_session=ID` pair and the CSRF token
/// the session's forms carry.
pub struct SignedIn {
    /// The `yz_session=ID` pair.
    pub cookie: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl SignedIn {
    /// Sign in with `token` on `base`, whose links and forms are signed with `secret`.
    pub async fn new(base: &str, token: &str, secret: &str) -> SignedIn {
        let cookie = sign_in(base, token).await;
        let csrf = csrf(secret, &cookie);
        SignedIn { cookie, csrf }
    }

    /// GET the page at `url` in this session: its text.
    pub async fn page(&self, http: &reqwest::Client, url: &str) -> String {
        http.get(url)
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .expect("GET page")
            .text()
            .await
            .expect("page text")
    }

    /// POST a console form (`pairs` after the session's CSRF token, where the pages put it).
    pub async fn post_form(
        &self,
        http: &reqwest::Client,
        url: &str,
        pairs: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(pairs);
        post_form(http, url, Some(&self.cookie), &all).await
    }
}
