//! Apps that are not ASGI: a WSGI app made by a factory is found by init
//! and served in the service's own interpreter, through uvicorn's WSGI
//! interface when it has uvicorn, else the standard library's server.
use std::fs;

use predicates::{prelude::*, str::contains};

use crate::{root, run_in, sandbox_variant};

#[test]
fn a_wsgi_factory_is_found_by_init_and_served() {
    let dir = sandbox_variant("phase4", "wsgi-factory");
    let root = root(&dir);
    let profile = fs::read_to_string(root.join("tmws-rollback.toml")).unwrap();
    assert!(profile.contains("app = \"src.main:create_app()\""), "{profile}");
    let check = run_in(&root, &["post-check", "--after", "deploy", "--only", "server"]);
    check.exits(0).stdout_has(contains("src.main:create_app() answered on 127.0.0.1:"));
}

#[test]
fn without_uvicorn_a_wsgi_app_is_served_by_the_standard_library() {
    let dir = sandbox_variant("phase4", "wsgi-factory");
    let root = root(&dir);
    // The service's own virtualenv, without uvicorn.
    crate::sandbox::service_venv_without_uvicorn(&root, &[]);
    let check = run_in(&root, &["post-check", "--after", "deploy", "--only", "server"]);
    check.exits(0).stdout_has(
        contains("src.main:create_app() answered on 127.0.0.1:")
            .and(contains("the checkout's own .venv, which has alembic but no uvicorn")),
    );
}
