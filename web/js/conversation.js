// Core module: conversation list and conversation view (filled in next).
export function setup(app) {
  app.conversations = { upsert() {}, remove() {}, list: () => [] };
  app.openConversation = () => {};
  app.addConversationAction = () => {};
}
