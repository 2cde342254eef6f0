//! A real browser for the console's tests: Debian's `chromium`, driven through `chromedriver`
//! (W3C WebDriver) by thirtyfour. Without the two binaries the browser tests skip, unless
//! `SKAN_TEST_REQUIRE_BROWSER=1` (CI) makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use thirtyfour::prelude::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The two viewports every screen is checked and photographed at.
pub(crate) const DESKTOP: (u32, u32) = (1280, 900);
pub(crate) const PHONE: (u32, u32) = (390, 844);

/// Records uncaught errors, rejected promises, console errors and CSP violations from the first
/// line of every page, before the console's own scripts run.
const ERROR_RECORDER: &str = r"
window.__consoleProblems = [];
const note = (kind, text) => window.__consoleProblems.push(kind + ': ' + text);
window.addEventListener('error', (e) => note('error', e.message || (e.target && (e.target.src || e.target.href)) || 'resource failed'), true);
window.addEventListener('unhandledrejection', (e) => note('unhandled rejection', String(e.reason && (e.reason.stack || e.reason.message) || e.reason)));
document.addEventListener('securitypolicyviolation', (e) => note('CSP violation', e.violatedDirective + ' ' + e.blockedURI));
const consoleError = console.error.bind(console);
console.error = (...args) => { note('console.error', args.map(String).join(' ')); consoleError(...args); };
";

/// A headless Chromium session with its own profile and download folder.
pub(crate) struct Browser {
    pub(crate) driver: WebDriver,
    pub(crate) base: String,
    pub(crate) downloads: tempfile::TempDir,
    test: String,
    chromedriver: Child,
    _profile: tempfile::TempDir,
}

/// Whether the browser tests must run (CI) rather than skip.
fn required() -> bool {
    std::env::var_os("SKAN_TEST_REQUIRE_BROWSER").is_some()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where screenshots go: `target/ui-screenshots/`.
pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::helpers::repo_path("target"), PathBuf::from);
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// A browser pointed at `base`, or `None` (skip) when Chromium is not installed here.
    pub(crate) async fn start(test: &str, base: &str) -> Option<Self> {
        if !(Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()) {
            assert!(
                !required(),
                "SKAN_TEST_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!("skipped: browser test {test} (install chromium and chromium-driver)");
            return None;
        }
        let port = free_port();
        let chromedriver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let server = format!("http://127.0.0.1:{port}");
        let ready = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(ready.elapsed() < Duration::from_secs(20), "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let downloads = tempfile::tempdir().unwrap();
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).unwrap();
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ] {
            caps.add_arg(arg).unwrap();
        }
        caps.add_arg(&format!("--user-data-dir={}", profile.path().display())).unwrap();
        caps.add_experimental_option(
            "prefs",
            json!({
                "download.default_directory": downloads.path().display().to_string(),
                "download.prompt_for_download": false,
            }),
        )
        .unwrap();
        let driver = WebDriver::new(&server, caps).await.expect("a Chromium session");
        let devtools = driver.cdp();
        devtools
            .send_raw("Page.addScriptToEvaluateOnNewDocument", json!({ "source": ERROR_RECORDER }))
            .await
            .unwrap();
        devtools
            .send_raw(
                "Browser.setDownloadBehavior",
                json!({"behavior": "allow", "downloadPath": downloads.path().display().to_string()}),
            )
            .await
            .unwrap();
        let browser = Self {
            driver,
            base: base.to_owned(),
            downloads,
            test: test.to_owned(),
            chromedriver,
            _profile: profile,
        };
        browser.viewport(DESKTOP).await;
        Some(browser)
    }

    fn devtools(&self) -> thirtyfour::cdp::Cdp {
        self.driver.cdp()
    }

    pub(crate) async fn viewport(&self, (width, height): (u32, u32)) {
        self.devtools()
            .send_raw(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
            )
            .await
            .unwrap();
    }

    /// Open a console path (`/ui/#/reports?...`).
    pub(crate) async fn open(&self, path: &str) {
        self.driver.goto(format!("{}{path}", self.base)).await.unwrap();
    }

    /// Sign in on the sign-in form with `key`.
    pub(crate) async fn sign_in(&self, key: &str) {
        let input = self.wait("#api-key").await;
        input.send_keys(key).await.unwrap();
        input.send_keys(Key::Enter).await.unwrap();
        self.wait("header.top").await;
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub(crate) async fn wait(&self, css: &str) -> WebElement {
        self.driver
            .query(By::Css(css))
            .wait(Duration::from_secs(10), Duration::from_millis(50))
            .first()
            .await
            .unwrap_or_else(|e| panic!("{}: no {css} within 10 s: {e}", self.test))
    }

    /// Wait until the element matching `css` contains `text`.
    pub(crate) async fn wait_text(&self, css: &str, text: &str) -> WebElement {
        let started = Instant::now();
        loop {
            if let Ok(elements) = self.driver.find_all(By::Css(css)).await {
                for element in elements {
                    if element.text().await.is_ok_and(|t| t.contains(text)) {
                        return element;
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{}: no {css} containing {text:?} within 10 s",
                self.test
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether anything matches `css` now.
    pub(crate) async fn exists(&self, css: &str) -> bool {
        !self.driver.find_all(By::Css(css)).await.unwrap().is_empty()
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.driver.execute(script, Vec::new()).await.unwrap().json().clone()
    }

    /// Press keys on whatever has the focus, as a keyboard would.
    pub(crate) async fn press(&self, keys: &[Key]) {
        let mut chain = self.driver.action_chain();
        for key in keys {
            chain = chain.send_keys(key.clone());
        }
        chain.perform().await.unwrap();
    }

    /// Hold Shift while pressing `keys`.
    pub(crate) async fn press_shifted(&self, keys: &[Key]) {
        let mut chain = self.driver.action_chain().key_down(Key::Shift);
        for key in keys {
            chain = chain.send_keys(key.clone());
        }
        chain.key_up(Key::Shift).perform().await.unwrap();
    }

    /// Type text into the focused element.
    pub(crate) async fn type_text(&self, text: &str) {
        self.driver.action_chain().send_keys(text).perform().await.unwrap();
    }

    /// Tab until the focused element matches `css` (at most 80 presses): proves it is reachable
    /// by keyboard.
    pub(crate) async fn tab_to(&self, css: &str) {
        for _ in 0..80 {
            let found = self
                .js(&format!(
                    "return document.activeElement && document.activeElement.matches({});",
                    serde_json::to_string(css).unwrap()
                ))
                .await;
            if found == Value::Bool(true) {
                return;
            }
            self.press(&[Key::Tab]).await;
        }
        panic!("{}: {css} is not reachable with Tab", self.test);
    }

    /// Uncaught errors, console errors and CSP violations seen so far on this page.
    pub(crate) async fn problems(&self) -> Vec<String> {
        serde_json::from_value(self.js("return window.__consoleProblems || [];").await).unwrap()
    }

    /// Interactive nodes of the accessibility tree that have no name.
    async fn unnamed_controls(&self) -> Vec<String> {
        let tree =
            self.devtools().send_raw("Accessibility.getFullAXTree", json!({})).await.unwrap();
        let interactive = [
            "button",
            "link",
            "textbox",
            "combobox",
            "checkbox",
            "gridcell",
            "spinbutton",
            "searchbox",
            "radio",
            "slider",
            "tab",
            "menuitem",
        ];
        tree["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["ignored"] != Value::Bool(true))
            .filter(|n| interactive.contains(&n["role"]["value"].as_str().unwrap_or("")))
            .filter(|n| n["name"]["value"].as_str().is_none_or(|name| name.trim().is_empty()))
            .map(|n| format!("{} (node {})", n["role"]["value"], n["backendDOMNodeId"]))
            .collect()
    }

    /// The bar every screen must pass at both sizes: no errors of any kind, no horizontal page
    /// scroll, every control named, focus visible; then a screenshot of each size.
    pub(crate) async fn check_screen(&self, screen: &str) {
        for size in [DESKTOP, PHONE] {
            self.viewport(size).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let overflow = self
                .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
                .await;
            if overflow.as_i64().unwrap_or(0) > 0 {
                let culprits = self
                    .js("const w = document.documentElement.clientWidth; return [...document.querySelectorAll('body *')] \
                         .filter(e => e.getBoundingClientRect().right > w + 1 && !e.closest('.table-scroll, pre')) \
                         .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));")
                    .await;
                panic!(
                    "{}: {screen} scrolls sideways by {overflow} px at {size:?}; too wide: {culprits}",
                    self.test
                );
            }
            let unnamed = self.unnamed_controls().await;
            assert!(
                unnamed.is_empty(),
                "{}: {screen} has unnamed controls: {unnamed:?}",
                self.test
            );
            let path = screenshot_dir().join(format!("{screen}-{}x{}.png", size.0, size.1));
            let png = self.driver.screenshot_as_png().await.unwrap();
            std::fs::write(&path, png).unwrap();
        }
        self.viewport(DESKTOP).await;
        let problems = self.problems().await;
        assert!(problems.is_empty(), "{}: {screen} reported problems: {problems:?}", self.test);
        self.js("if (document.activeElement) document.activeElement.blur(); return 0;").await;
        self.press(&[Key::Tab]).await;
        let outline = self
            .js("const s = getComputedStyle(document.activeElement); \
                 return document.activeElement.tagName + ' ' + s.outlineStyle + ' ' + s.outlineWidth;")
            .await;
        assert!(
            outline.as_str().is_some_and(|o| !o.contains(" none ") && !o.ends_with(" 0px")),
            "{}: {screen}: focus is not visible ({outline})",
            self.test
        );
    }

    /// A file downloaded into this browser's download folder, waiting up to 10 s.
    pub(crate) async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.path().join(name);
        let started = Instant::now();
        loop {
            if let Ok(bytes) = std::fs::read(&path) {
                return bytes;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{name} was not downloaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn quit(mut self) {
        let driver = self.driver.clone();
        let _ = driver.quit().await;
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.chromedriver.kill();
    }
}
