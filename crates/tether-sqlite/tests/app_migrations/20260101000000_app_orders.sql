-- An app's own migration, beside tether's on one database.
CREATE TABLE IF NOT EXISTS app_orders (id BIGINT PRIMARY KEY);
