//! Flows run on a call's `Session`.

use super::CallIo;
use crate::call::{EndReason, Session, Waited};
use crate::media::prompt::Prompt;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl CallIo for Session {
    async fn play(
        &mut self,
        prompts: Vec<Arc<Prompt>>,
        barge_in: bool,
    ) -> Result<Option<char>, EndReason> {
        match self.play_and_wait(prompts, barge_in).await? {
            Waited::Digit(d) => Ok(Some(d)),
            _ => Ok(None),
        }
    }

    async fn play_for(
        &mut self,
        prompts: Vec<Arc<Prompt>>,
        looping: bool,
        max: Duration,
    ) -> Result<(), EndReason> {
        let token = Session::play(self, prompts, looping);
        let until = Instant::now() + max;
        loop {
            match self.wait(token, false, Some(until)).await? {
                Waited::PlaybackDone => return Ok(()),
                Waited::Timeout => {
                    self.stop_playback();
                    return Ok(());
                }
                _ => {}
            }
        }
    }

    async fn digit(&mut self, timeout: Duration) -> Result<Option<char>, EndReason> {
        match self
            .wait(None, true, Some(Instant::now() + timeout))
            .await?
        {
            Waited::Digit(d) => Ok(Some(d)),
            _ => Ok(None),
        }
    }

    fn clear_digits(&mut self) {
        Session::clear_digits(self);
    }

    fn disconnect(&mut self) {
        self.hangup();
    }
}
