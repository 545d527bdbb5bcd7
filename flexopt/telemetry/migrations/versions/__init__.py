"""One file per revision; Alembic reads them by path, they are a package so that wheels ship them."""
