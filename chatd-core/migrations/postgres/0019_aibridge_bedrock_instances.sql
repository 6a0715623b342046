-- Bedrock-backed AI Gateway instances (docs/ai-gateway.md "Bedrock-backed Anthropic"): the
-- AWS region and the model mapping of an instance of type `bedrock`; NULL for other types.
ALTER TABLE aibridge_provider_instances ADD COLUMN bedrock_region TEXT NULL;
ALTER TABLE aibridge_provider_instances ADD COLUMN bedrock_model TEXT NULL;
ALTER TABLE aibridge_provider_instances ADD COLUMN bedrock_small_fast_model TEXT NULL;
