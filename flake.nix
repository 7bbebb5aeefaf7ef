{
  description = "promptlam: reproduction of 'Vision-Language Models Unlock Task-Centric Latent Actions'";

  # nixos-24.11 at its final commit (2025-06-30); flake.lock pins the same revision and its hash.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/50ab793786d9de88ee30ec4e4c24fb4236fc2674";

  outputs = { self, nixpkgs }:
    let
      # lock/pylock.toml is resolved for CPython 3.11 on x86_64 Linux (its `environments`), with
      # the CPU build of torch; no other system is locked.
      systems = [ "x86_64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The one lock of every Python dependency, shared with `make setup` (docs/install.md).
      lock = builtins.fromTOML (builtins.readFile ./lock/pylock.toml);
      # pip (the installer of `make setup`) and setuptools (the build backend) are locked for the
      # pip path; Nix installs and builds with its own, so they stay out of the environment.
      buildTools = [ "pip" "setuptools" ];
      locked = builtins.filter (p: !(builtins.elem p.name buildTools)) lock.packages;

      # Every locked file is a fixed-output fetch of its URL, checked against the lock's sha256:
      # the Nix side of `pip install --require-hashes`. Nothing is resolved or pip-installed at
      # run time; wheels are unpacked into the store at build time.
      pythonEnv = pkgs:
        let
          python = pkgs.python311;
          fetch = file: pkgs.fetchurl {
            name = file.name; # the wheel's file name (its URL may be %-quoted, e.g. `+cpu`)
            url = file.url;
            sha256 = file.hashes.sha256;
          };
          common = p: {
            pname = p.name;
            version = p.version;
            doCheck = false;
            # Each package's requirements are the other locked packages, all in one environment
            # below (the lock's closure is checked by `pip check` in `make setup`).
            dontCheckRuntimeDeps = true;
          };
          fromLock = p:
            if p ? wheels then
              assert builtins.length p.wheels == 1;
              python.pkgs.buildPythonPackage (common p // {
                format = "wheel";
                src = fetch (builtins.head p.wheels);
              })
            else
              python.pkgs.buildPythonPackage (common p // {
                pyproject = true; # an sdist (rliable, connection-pool): built with nixpkgs' setuptools
                src = fetch p.sdist;
                build-system = [ python.pkgs.setuptools ];
              });
        in
        python.withPackages (_: map fromLock locked);

      # Manylinux wheels load these by name: libstdc++, zlib, and OpenGL/EGL for headless MuJoCo.
      runtimeEnv = pkgs: {
        LD_LIBRARY_PATH = pkgs.lib.makeLibraryPath [
          pkgs.stdenv.cc.cc.lib pkgs.zlib pkgs.libGL pkgs.libglvnd pkgs.mesa
        ];
        __EGL_VENDOR_LIBRARY_DIRS = "${pkgs.mesa}/share/glvnd/egl_vendor.d";
        MUJOCO_GL = "egl";
        # The Makefile uses this environment instead of creating .venv.
        PROMPTLAM_NIX_PYTHON = "${pythonEnv pkgs}/bin/python";
      };

      tools = pkgs: [ (pythonEnv pkgs) pkgs.gnumake pkgs.git ];

      # promptlam itself runs from the checkout (src/), so that edits and `git describe` apply.
      useCheckout = ''
        export PYTHONPATH="$PWD/src''${PYTHONPATH:+:$PYTHONPATH}"
        if [ -n "''${VIRTUAL_ENV:-}" ]; then
          echo "promptlam: a virtual environment ($VIRTUAL_ENV) is active; the Nix environment comes first on PATH, run 'deactivate' to drop it" >&2
        fi
      '';

      # `nix run .#smoke` / `nix run .#test`: the README's two commands inside the Nix environment.
      makeApp = pkgs: target: {
        type = "app";
        program = "${pkgs.writeShellApplication {
          name = "promptlam-${target}";
          runtimeInputs = tools pkgs;
          runtimeEnv = runtimeEnv pkgs;
          text = useCheckout + "exec make ${target}";
        }}/bin/promptlam-${target}";
      };
    in
    {
      packages = forAllSystems (pkgs: {
        python = pythonEnv pkgs;
        default = pythonEnv pkgs;
      });

      # `nix develop -c snakemake figures/fig1.pdf --cores all`
      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell ((runtimeEnv pkgs) // {
          packages = tools pkgs;
          shellHook = useCheckout;
        });
      });

      apps = forAllSystems (pkgs: {
        smoke = makeApp pkgs "smoke";
        test = makeApp pkgs "test";
        default = makeApp pkgs "smoke";
      });

      # Builds the environment and imports what the workflow needs (needs the real nixpkgs).
      checks = forAllSystems (pkgs: {
        imports = pkgs.runCommand "promptlam-imports" (runtimeEnv pkgs) ''
          export HOME=$TMPDIR PYTHONPATH=${self}/src
          ${pythonEnv pkgs}/bin/python -c 'import torch, numpy, h5py, mujoco, metaworld, transformers, snakemake, promptlam'
          touch $out
        '';
      });
    };
}
