//! Group chats, channels, invites and message management in-process: PROTOCOL §7 S12 and S13.

mod common;

use common::realtime::Target;
use common::{chats, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_chats_and_channels() {
    let s = TestServer::start().await;
    chats::s12(&Target::of(&s)).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_message_management() {
    let s = TestServer::start().await;
    chats::s13(&Target::of(&s)).await;
    s.stop().await;
}
