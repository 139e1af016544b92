"""The PostgreSQL that store tests run against is real: it answers SQL and keeps rows."""

import sqlalchemy


def test_postgres_server_answers_sql(postgres_url):
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE probe (n int)"))
        connection.execute(sqlalchemy.text("INSERT INTO probe VALUES (41), (1)"))
    with engine.begin() as connection:
        total = connection.execute(sqlalchemy.text("SELECT sum(n) FROM probe")).scalar_one()
        version = connection.execute(sqlalchemy.text("SHOW server_version")).scalar_one()
        connection.execute(sqlalchemy.text("DROP TABLE probe"))  # the session's database is shared
    engine.dispose()
    assert total == 42
    assert int(version.split(".")[0]) >= 13
