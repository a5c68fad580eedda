// Lint rules. Type-aware (typescript-eslint): floating promises are errors,
// `any` is banned, and workflow code cannot reach Node builtins or other
// src/ folders (it runs in Temporal's deterministic sandbox).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.data/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Named exports only (STYLE §2).' }],
    },
  },
  // The `tollgate` bin shim is plain JavaScript outside the TypeScript project.
  { files: ['bin/**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    // Sizes a reader can hold (issue 13): no source file over 400 lines, no function over 80 (blank lines and
    // comments not counted). A nested function counts toward its parent too, so factories of many activities or
    // plugin hooks are composed from smaller ones.
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 400 }],
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // Only entry points, config and infra may read the environment (STYLE rule 7).
    files: ['src/**/*.ts'],
    ignores: ['src/graphql/server.ts', 'src/workflows/worker.ts', 'src/cli/tollgate.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read config once at the entry point (STYLE §5).' },
      ],
    },
  },
  {
    files: ['src/workflows/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'Workflows run in a deterministic sandbox: no Node builtins.' },
            {
              // a regex: gitignore-style groups cannot re-include `../../<area>/model/` once `../../*` excludes its parent
              regex: '^\\.\\./\\.\\./(?![a-z]+/model/)',
              message: 'Workflows import only @temporalio/workflow, types from ../activities and src/*/model/.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'console', message: "Use log from '@temporalio/workflow'." },
        { name: 'setTimeout', message: "Use sleep from '@temporalio/workflow'." },
      ],
    },
  },
  {
    files: ['eslint.config.js', 'vitest.config.ts', '.dependency-cruiser.cjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['.dependency-cruiser.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable' } },
  },
  {
    files: ['eslint.config.js', 'vitest.config.ts', 'dashboard/vite.config.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
