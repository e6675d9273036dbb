"""Herald: bulk email campaigns for a multi-tenant CRM."""
