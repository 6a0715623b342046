//! Request bodies as the server's JSON extractor sees them: bytes deserialize into the
//! request type (or fail), and a deserialized request is validated (or refused with a
//! `Response`). The first byte picks the request type.
#![no_main]

use codersdk::*;
use libfuzzer_sys::fuzz_target;

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 10 {
        0 => {
            if let Some(r) = body::<CreateChatRequest>(bytes) {
                let _ = validate_create_chat_request(&r);
            }
        }
        1 => {
            if let Some(r) = body::<CreateChatMessageRequest>(bytes) {
                let _ = validate_create_chat_message_request(&r);
            }
        }
        2 => {
            if let Some(r) = body::<EditChatMessageRequest>(bytes) {
                let _ = validate_edit_chat_message_request(&r);
            }
        }
        3 => {
            if let Some(r) = body::<UpdateChatRequest>(bytes) {
                let _ = validate_update_chat_request(&r);
            }
        }
        4 => {
            if let Some(r) = body::<SubmitToolResultsRequest>(bytes) {
                let _ = validate_submit_tool_results_request(&r);
            }
        }
        5 => {
            if let Some(r) = body::<CreateChatProviderConfigRequest>(bytes) {
                let _ = validate_create_provider_config(&r, true);
                let _ = validate_create_provider_config(&r, false);
            }
        }
        6 => {
            if let Some(r) = body::<CreateChatModelConfigRequest>(bytes) {
                let _ = validate_create_model_config(&r);
            }
        }
        7 => {
            if let Some(r) = body::<UpdateChatModelConfigRequest>(bytes) {
                let _ = validate_update_model_config(&r);
            }
        }
        8 => {
            if let Some(r) = body::<CreateUserChatProviderKeyRequest>(bytes) {
                let _ = validate_user_provider_key(&r);
            }
        }
        _ => {
            let _ = body::<CreateMCPServerConfigRequest>(bytes);
            let _ = body::<UpdateMCPServerConfigRequest>(bytes);
            let _ = body::<UpdateChatSystemPromptRequest>(bytes);
        }
    }
});
