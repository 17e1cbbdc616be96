-- The customer's order history filtered by service, by country or by both
-- (activations::history): one range per (account, filter, status), read newest first by id.
CREATE INDEX activations_user_service ON activations(user_id, service, status, id);
CREATE INDEX activations_user_country ON activations(user_id, country_id, status, id);
CREATE INDEX activations_user_country_service
    ON activations(user_id, country_id, service, status, id);
