"""The service roles: API keys, the job worker, the scheduler, proxy pools kept in the catalog."""
