"""`report`: one self-contained HTML file of the alerts, their entities and deliveries."""
