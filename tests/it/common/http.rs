//! The console and the JSON API served on a free loopback port, and the tokens to call
//! them with.

use yanzhen::core::state::Rights;
use yanzhen::store::Store;

/// A server on `127.0.0.1:0`; dropping it (or [`Served::stop`]) shuts it down.
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its address.
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A listener on a free loopback port, and its `http://127.0.0.1:PORT`, for a server whose
/// config must know its own address before the application is built (links in messages).
pub async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, base)
}

/// Serve `state` on a free loopback port until the returned [`Served`] is stopped or dropped.
pub async fn serve(state: yanzhen::api::State) -> Served {
    let (listener, _) = bind().await;
    serve_on(listener, state)
}

/// Serve `state` on `listener` (from [`bind`]) until the returned [`Served`] is stopped or
/// dropped.
pub fn serve_on(listener: tokio::net::TcpListener, state: yanzhen::api::State) -> Served {
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(yanzhen::api::serve(listener, state, async move {
        // A dropped sender stops the server as a sent stop does.
        let _ = stopped.await;
    }));
    Served {
        base: format!("http://{addr}"),
        addr,
        stop,
        task,
    }
}

impl Served {
    /// Shut the server down and wait until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A client that does not follow redirects (a form's 303 is what a test checks).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A token named `name` with `rights`, created by `test` at 0: the secret to send.
pub async fn token(store: &dyn Store, name: &str, rights: Rights) -> String {
    yanzhen::access::create_token(store, name, rights, None, "test", 0)
        .await
        .expect("token")
}

/// The office's administrator token `zzb-ma`.
pub async fn admin_token(store: &dyn Store) -> String {
    token(store, "zzb-ma", Rights::Admin).await
}
