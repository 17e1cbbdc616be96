-- The customer's order history filtered by service or by country (activations::history):
-- one range per (account, service or country, status), read newest first by id.
CREATE INDEX activations_user_service ON activations(user_id, service, status, id);
CREATE INDEX activations_user_country ON activations(user_id, country_id, status, id);
