//! A real browser (headless Chromium through chromedriver) logs in through the
//! balancer with the login form, reloads ten times while different instances answer,
//! and stays logged in. The profile page's screenshot is saved as a test artifact.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Proc, Store, env, free_port, start_balancer, start_instances, temp_dir, wait_until};
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

#[test]
fn a_browser_stays_logged_in_across_instances() {
    let instances = start_instances(&Store::file(), 3);
    let (base, _balancer) = start_balancer(&instances, "round-robin");

    let port = free_port();
    let _driver = Proc(
        Command::new(env("TETHER_CHROMEDRIVER", "chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver_url = format!("http://127.0.0.1:{port}");
    let probe = reqwest::blocking::Client::new();
    let status = format!("{driver_url}/status");
    wait_until("chromedriver up", Duration::from_secs(20), || {
        probe.get(&status).send().is_ok()
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(drive(&base, &driver_url));
}

async fn drive(base: &str, driver_url: &str) {
    let profile_dir = temp_dir("chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": env("TETHER_CHROMIUM", "chromium"),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=900,760",
                format!("--user-data-dir={}", profile_dir.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("a chromedriver session");

    browser.goto(&format!("{base}/")).await.unwrap();
    for (field, text) in [("username", "ada.lovelace"), ("password", "demo")] {
        let input = browser.find(Locator::Id(field)).await.unwrap();
        input.send_keys(text).await.unwrap();
    }
    browser
        .find(Locator::Id("submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // A click does not wait for the navigation it starts (a reload does), so each
    // page is waited for: the profile page, or a timeout that fails the test.
    let mut answered = HashSet::new();
    for _ in 0..10 {
        let user = match browser
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("user"))
            .await
        {
            Ok(user) => user,
            Err(e) => panic!(
                "the profile page, not the login form ({e}); the browser is at {:?} showing:\n{}",
                browser.current_url().await.map(|u| u.to_string()),
                browser.source().await.unwrap_or_default()
            ),
        };
        assert_eq!(user.text().await.unwrap(), "ada.lovelace");
        answered.insert(
            browser
                .find(Locator::Id("instance"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        browser.refresh().await.unwrap();
    }
    assert!(
        answered.len() >= 2,
        "every reload was answered by {answered:?}"
    );

    let png = browser.screenshot().await.unwrap();
    let artifact = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("profile.png");
    std::fs::write(&artifact, &png).unwrap();
    eprintln!(
        "profile page screenshot: {} (instances that answered: {answered:?})",
        artifact.display()
    );
    assert!(png.starts_with(b"\x89PNG"));
    browser.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile_dir);
}
