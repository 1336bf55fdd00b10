//! Headless Chromium for the browser tests (Debian's `/usr/bin/chromium`, driven over the
//! DevTools protocol by `headless_chrome`): whether it is there (skipped, or failed under
//! `CI=true`, when not), launching it with one tab, signing in through the console's form,
//! keeping screenshots where `YANZHEN_SCREENSHOTS=DIR` asks for them, and the sample round
//! the console's browser tests look at.

use super::daemon::Setup;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use yanzhen::runtime::app::{App, AppOptions};
use yanzhen::runtime::clock::VirtualClock;
use yanzhen::store::Store;

/// Where the browser tests expect Chromium (`.ci/run` installs it).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Flags for a quiet, self-contained headless Chromium (no sandbox: CI runs as root).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Whether Chromium is installed; when not, the test is skipped (see
/// [`super::skip_or_fail`]: under `CI=true` it fails) and the caller returns.
pub fn chromium_or_skip() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    super::skip_or_fail(&format!("browser test: {CHROMIUM} not found"));
    false
}

/// Start Chromium with its profile in `profile` and a `window` (width, height) sized
/// window; its one tab waits up to 30 s for an element. Keep the browser alive as long
/// as the tab is used.
pub fn launch(profile: &Path, window: (u32, u32)) -> anyhow::Result<(Browser, Arc<Tab>)> {
    let flags: Vec<&OsStr> = CHROMIUM_FLAGS.iter().map(OsStr::new).collect();
    let options = LaunchOptions::default_builder()
        .path(Some(PathBuf::from(CHROMIUM)))
        .headless(true)
        .sandbox(false)
        .user_data_dir(Some(profile.to_path_buf()))
        .window_size(Some(window))
        .args(flags)
        .idle_browser_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| anyhow::anyhow!("launch options: {e}"))?;
    let browser = Browser::new(options)?;
    let tab = browser.new_tab()?;
    tab.set_default_timeout(Duration::from_secs(30));
    Ok((browser, tab))
}

/// Run the blocking browser session `browse` off the runtime's threads that serve its
/// pages; every expectation of it is an error rather than a panic so that the caller can
/// stop its servers first.
pub async fn session<T: Send + 'static>(
    browse: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(browse)
        .await
        .expect("browser thread")
}

/// On the sign-in form: type `token` and press 登录.
pub fn sign_in(tab: &Tab, token: &str) -> anyhow::Result<()> {
    tab.wait_for_element("#token")?.click()?;
    tab.type_str(token)?;
    tab.find_element("#login-submit")?.click()?;
    Ok(())
}

/// Where pages and files of a session are kept: `YANZHEN_SCREENSHOTS=DIR`, else nowhere.
#[derive(Clone, Debug)]
pub struct Shots {
    dir: Option<PathBuf>,
    prefix: &'static str,
}

impl Shots {
    /// From `YANZHEN_SCREENSHOTS`; every file name starts with `prefix`.
    pub fn from_env(prefix: &'static str) -> Shots {
        Shots {
            dir: std::env::var_os("YANZHEN_SCREENSHOTS").map(PathBuf::from),
            prefix,
        }
    }

    /// Keep `bytes` as `PREFIX{name}`, if asked to.
    pub fn keep(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        if let Some(dir) = &self.dir {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(format!("{}{name}", self.prefix)), bytes)?;
        }
        Ok(())
    }

    /// Keep a PNG of the tab's whole page as `PREFIX{name}.png`, if asked to.
    pub fn page(&self, tab: &Tab, name: &str) -> anyhow::Result<()> {
        if self.dir.is_some() {
            let png =
                tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)?;
            self.keep(&format!("{name}.png"), &png)?;
        }
        Ok(())
    }
}

/// A draft with a misspelt key (`titel`) on line 5, column 5.
pub const MISSPELT: &str = "id: yearly-training\ntitle: 年度培训\nstages:\n  - id: s\n    titel: 培训\n    opens: {from: round_start}\n    closes: {from: round_start, days: 3}\n    tasks: []\n";

/// The sample round the console's browser tests look at, not yet run: the shipped
/// workflows (copies in a temporary folder, which the editor may write), and
/// `community-reserve-selection` started on 2019-07-01 for dongguan, xiguan and nanmen on
/// SQLite, the clock at 2019-07-01 00:00.
pub struct SampleRound {
    /// The application, links signed with the secret given.
    pub app: App,
    /// Its store.
    pub store: Arc<dyn Store>,
    /// Its clock.
    pub clock: Arc<VirtualClock>,
    /// The config folder.
    pub setup: Setup,
    /// The round's id.
    pub round: i64,
    _guard: super::stores::Guard,
}

/// Build [`SampleRound`] with `secret` for links and `instance` for the application.
pub async fn sample_round(secret: &str, instance: &str) -> SampleRound {
    yanzhen::notify::install_tls_provider();
    let (_, store, guard) = super::stores::sqlite().await;
    let setup = Setup::new().with_shipped_workflows();
    let cat = setup.catalog(super::date(2019, 7, 1));
    let clock = Arc::new(VirtualClock::new(super::at(2019, 7, 1, 0, 0)));
    let app = App::build(
        cat,
        store.clone(),
        clock.clone(),
        AppOptions {
            link_secret: Some(secret.into()),
            config_path: setup.config(),
            ..AppOptions::new(instance)
        },
    )
    .await
    .expect("app");
    let round = super::start_round(
        &app.engine,
        "community-reserve-selection",
        super::date(2019, 7, 1),
        &["dongguan", "xiguan", "nanmen"],
    )
    .await;
    SampleRound {
        app,
        store,
        clock,
        setup,
        round,
        _guard: guard,
    }
}
