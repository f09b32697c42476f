//! The usual shapes of a command, so that most commands are a form and a function.

use super::{CommandRequest, HandlerResult, Reply, bad_payload};
use crate::error::StanzaError;
use futures::future::BoxFuture;
use rookery_forms::{Action, Actions, DataForm, FormType, Values};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;

/// A command that needs no input: it runs at once and completes.
pub fn immediate<F, Fut>(
    f: F,
) -> impl Fn(CommandRequest, Option<Value>) -> BoxFuture<'static, HandlerResult> + Send + Sync + 'static
where
    F: Fn(CommandRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    move |req, _state| Box::pin(f(req))
}

/// One form, then the action (Prosody's `new_simple_form`): the first request gets the
/// form; the submission is checked against it and `f` gets the checked values.
pub fn simple_form<F, Fut>(
    layout: DataForm,
    f: F,
) -> impl Fn(CommandRequest, Option<Value>) -> BoxFuture<'static, HandlerResult> + Send + Sync + 'static
where
    F: Fn(CommandRequest, Values) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    prefilled_form(
        move |_req| {
            let l = layout.clone();
            async move { Ok(l) }
        },
        f,
    )
}

/// Like [`simple_form`], with the form built per request (Prosody's
/// `new_initial_data_form`), e.g. pre-filled with current values.
pub fn prefilled_form<L, LFut, F, Fut>(
    layout: L,
    f: F,
) -> impl Fn(CommandRequest, Option<Value>) -> BoxFuture<'static, HandlerResult> + Send + Sync + 'static
where
    L: Fn(CommandRequest) -> LFut + Send + Sync + 'static,
    LFut: Future<Output = Result<DataForm, StanzaError>> + Send + 'static,
    F: Fn(CommandRequest, Values) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    let layout = Arc::new(layout);
    let f = Arc::new(f);
    move |req, state| {
        let layout = layout.clone();
        let f = f.clone();
        Box::pin(async move {
            match state.as_ref().and_then(Value::as_str) {
                None => {
                    let form = layout(req.clone()).await?;
                    let saved = String::from(&form.to_element());
                    Ok(Reply::executing(
                        form,
                        Actions::new(&[Action::Complete], Action::Complete),
                        Value::String(saved),
                    ))
                }
                Some(saved) => {
                    let form = parse_saved(saved)?;
                    let values = check(&form, &req)?;
                    f(req, values).await
                }
            }
        })
    }
}

/// Several forms in a row with next / prev, then the action with every stage's values.
/// Going back shows a stage with the values submitted before.
pub fn wizard<F, Fut>(
    stages: Vec<DataForm>,
    f: F,
) -> impl Fn(CommandRequest, Option<Value>) -> BoxFuture<'static, HandlerResult> + Send + Sync + 'static
where
    F: Fn(CommandRequest, Vec<Values>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    assert!(!stages.is_empty(), "a wizard needs at least one stage");
    let stages = Arc::new(stages);
    let f = Arc::new(f);
    move |req, state| {
        let stages = stages.clone();
        let f = f.clone();
        Box::pin(async move {
            let (mut stage, mut saved) = match &state {
                None => (0usize, Vec::<Values>::new()),
                Some(s) => decode_wizard(s)?,
            };
            let last = stages.len() - 1;
            if state.is_some() {
                match req.action {
                    Action::Prev => {
                        stage = stage.saturating_sub(1);
                    }
                    Action::Next | Action::Complete | Action::Execute => {
                        let values = check(&stages[stage], &req)?;
                        if saved.len() <= stage {
                            saved.resize(stage + 1, Values::default());
                        }
                        saved[stage] = values;
                        if req.action == Action::Complete || stage == last {
                            saved.truncate(stages.len());
                            return f(req, saved).await;
                        }
                        stage += 1;
                    }
                    Action::Cancel => return Ok(Reply::canceled()),
                }
            }
            let mut form = stages[stage].clone();
            if let Some(values) = saved.get(stage) {
                for field in &mut form.fields {
                    if let Some(v) = field.var.as_ref().and_then(|var| values.0.get(var)) {
                        field.values = v.clone();
                    }
                }
            }
            let mut allowed = Vec::new();
            if stage > 0 {
                allowed.push(Action::Prev);
            }
            let forward = if stage == last {
                Action::Complete
            } else {
                Action::Next
            };
            allowed.push(forward);
            Ok(Reply::executing(
                form,
                Actions::new(&allowed, forward),
                encode_wizard(stage, &saved),
            ))
        })
    }
}

fn encode_wizard(stage: usize, saved: &[Values]) -> Value {
    let values: Vec<Value> = saved
        .iter()
        .map(|v| serde_json::to_value(&v.0).unwrap_or(Value::Null))
        .collect();
    json!({ "stage": stage, "values": values })
}

fn decode_wizard(v: &Value) -> Result<(usize, Vec<Values>), StanzaError> {
    let broken = || StanzaError::internal("the command's saved state is broken");
    let stage = v.get("stage").and_then(Value::as_u64).ok_or_else(broken)? as usize;
    let values = v
        .get("values")
        .and_then(Value::as_array)
        .ok_or_else(broken)?
        .iter()
        .map(|x| {
            serde_json::from_value(x.clone())
                .map(Values)
                .map_err(|_| broken())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((stage, values))
}

fn parse_saved(xml: &str) -> Result<DataForm, StanzaError> {
    let broken = || StanzaError::internal("the command's saved form is broken");
    let e: minidom::Element = xml.parse().map_err(|_| broken())?;
    DataForm::from_element(&e).map_err(|_| broken())
}

/// Check the submitted form against the stage's layout.
fn check(layout: &DataForm, req: &CommandRequest) -> Result<Values, StanzaError> {
    let Some(sub) = &req.form else {
        return Err(bad_payload(
            "this stage needs its form submitted (<x xmlns='jabber:x:data' type='submit'/>)",
        ));
    };
    if sub.kind == FormType::Cancel {
        tracing::debug!("a form of type 'cancel' was submitted; treated as a submission");
    }
    layout.check(sub).map_err(bad_payload)
}
